"""Generated loan books for the SQL-versus-domain property tests.

A book is a few loans of varied terms (a last installment absorbing a
remainder, thresholds, currencies, start dates) with payments of 1..k payable
installments at random dates, written through BillingService with the business
date following each write, so that stored statuses are what the service stores.
The tests share one database per test function and empty it per example.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from loanbilling.domain.loan import LoanTerms
from loanbilling.domain.payment import payable_count
from loanbilling.services.billing import BillingService
from loanbilling.storage.tables import customers, events, installments, loans, payments

START = dt.date(2026, 1, 5)
DAY = dt.timedelta(days=1)

# A few examples per database: each writes a whole book through the service.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class LoanPlan:
    terms: LoanTerms
    opened_after_days: int  # the business date of CreateLoan, relative to the start
    payments: tuple[tuple[int, int], ...]  # (days after the previous one, installments wanted)


@st.composite
def loan_plans(draw) -> LoanPlan:
    weeks = draw(st.one_of(st.integers(1, 13), st.sampled_from([26, 50])))
    principal = draw(
        st.one_of(
            st.sampled_from([1_000, 99_999, 1_000_000, 1_234_567, 5_000_000]),
            st.integers(1, 10**9),
        )
    )
    terms = LoanTerms.create(
        principal_amount=max(principal, weeks),  # installments of at least 1
        interest_rate_bps=draw(st.one_of(st.sampled_from([0, 1000, 1234]), st.integers(0, 5000))),
        weeks=weeks,
        start_date=START + draw(st.integers(-60, 60)) * DAY,
        currency_code=draw(st.sampled_from(["IDR", "IDR", "USD"])),
        delinquency_threshold=draw(st.integers(1, 3)),
    )
    payments = draw(
        st.lists(st.tuples(st.integers(1, 28), st.integers(1, 6)), max_size=5).map(tuple)
    )
    return LoanPlan(terms, draw(st.integers(-7, 14)), payments)


BOOKS = st.lists(loan_plans(), min_size=1, max_size=5)
# Dates around the books' loans: before any start, during and after their terms.
DATES = st.integers(-70, 200).map(lambda days: START + days * DAY)


def empty_database(engine) -> None:
    """Deletes every row a book writes (children first), for the next example."""
    with engine.begin() as conn:
        for table in (events, installments, payments, loans, customers):
            conn.execute(delete(table))


def write_book(billing: BillingService, clock, plans: list[LoanPlan]) -> list[int]:
    """Writes the loans and their payments; returns the loan ids. Payments whose
    turn finds nothing payable are skipped; a payment settles what the plan wants,
    at most what is payable on its date."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    ids = []
    for n, plan in enumerate(plans):
        terms = plan.terms
        opened = terms.start_date + plan.opened_after_days * DAY
        clock.current = opened
        loan_id = billing.create_loan(
            customer_id=customer,
            principal_amount=terms.principal_amount,
            interest_rate_bps=terms.interest_rate_bps,
            weeks=terms.weeks,
            start_date=terms.start_date,
            currency_code=terms.currency_code,
            delinquency_threshold=terms.delinquency_threshold,
        ).loan.id
        ids.append(loan_id)
        paid, on = 0, terms.start_date
        for i, (gap, wanted) in enumerate(plan.payments):
            on += gap * DAY
            k = min(wanted, payable_count(terms, paid, on))
            if k == 0:
                continue
            clock.current = max(on, opened)
            billing.make_payment(
                loan_id=loan_id,
                amount=terms.amount_through(paid + k) - terms.amount_through(paid),
                payment_date=on,
                idempotency_key=f"p{loan_id}-{n}-{i}",
            )
            paid += k
    return ids
