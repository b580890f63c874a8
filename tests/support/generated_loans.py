"""Generated loan books for the SQL-versus-domain property tests.

A book is a few loans of varied terms (a last installment absorbing a
remainder, thresholds, currencies, start dates, prepayment policies) with
payments at random dates. Most payments go through BillingService, with the
business date following each write, so that stored statuses are what the
service stores; each settles 1..k payable installments. The others are
written straight into the tables with any amount, so that the paid amount A
stops off an installment boundary (installment c(A) + 1 partly covered), as
reversals and recoveries will leave it: the loan row's paid_amount, its
materialised paid_count = c(A), outstanding_amount = T - A and stored status,
and a payments row with paid_amount_after. A service payment after such a one
then finishes the partly covered installment. Some payments are payoffs, through
the service at the quote of their date: under WAIVE_UNDUE they raise A by the
interest they waive, which is no cash.

Write_book returns, per loan, the paid amount after each payment as the book
wrote it, and the interest each payoff waived: the tests' oracle takes A(D)
and the waived total from there, not from storage.
The tests share one database per test function and empty it per example.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, text, update

from loanbilling.domain.loan import (
    MAX_WEEKS,
    Loan,
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
    stored_status,
)
from loanbilling.domain.payment import Payment, PaymentKind, payable_count
from loanbilling.services.billing import BillingService
from loanbilling.storage.posting import GUARD_DDL, UNGUARD_DDL
from loanbilling.storage.repository import payment_row
from loanbilling.storage.tables import (
    customers,
    event_numbers,
    events,
    installments,
    journal_entries,
    ledger_totals,
    loans,
    payments,
    pending_events,
)

START = dt.date(2026, 1, 5)
DAY = dt.timedelta(days=1)

# A few examples per database: each writes a whole book.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Where a payment written directly takes A, from cum(c + installments): a random
# part of the next installment, one unit short of the boundary, one unit past it.
PART, SHORT, PAST = "part", "short", "past"


@dataclass(frozen=True)
class PaymentPlan:
    gap_days: int  # after the previous payment (the first: after the start)
    installments: int  # how far past the covered ones it reaches
    # None: through the service, the accepted amount closing `installments` (at most
    # what is payable). Else written directly, with an amount that takes A to
    # cum(c + installments) plus the offset it names (clamped to 1..what is owed).
    direct: str | None = None
    permille: int = 0  # PART: the offset, in thousandths of an installment
    # A payoff through the service at its date's quote instead (the rest ignored).
    payoff: bool = False

    def offset(self, terms: LoanTerms) -> int:
        if self.direct == SHORT:
            return -1
        if self.direct == PAST:
            return 1
        return terms.weekly_payment * self.permille // 1000


@dataclass(frozen=True)
class LoanPlan:
    terms: LoanTerms
    opened_after_days: int  # the business date of CreateLoan, relative to the start
    payments: tuple[PaymentPlan, ...]


@dataclass
class WrittenLoan:
    """A loan as the book wrote it: (payment date, A right after it), in write order."""

    id: int
    history: list[tuple[dt.date, int]] = field(default_factory=list)
    # (payment date, interest waived) of each payoff that waived any.
    waived: list[tuple[dt.date, int]] = field(default_factory=list)

    @property
    def paid_amount(self) -> int:
        return self.history[-1][1] if self.history else 0

    def paid_amount_by(self, on: dt.date) -> int:
        """A(on): after the latest payment dated on or before `on`, 0 without one."""
        return next((after for day, after in reversed(self.history) if day <= on), 0)

    def waived_by(self, on: dt.date) -> int:
        """The interest waived by its payoffs dated on or before `on`."""
        return sum(amount for day, amount in self.waived if day <= on)

    def position(self, loan: Loan, as_of: dt.date) -> Position:
        """The oracle's position: the domain Loan at `as_of`, with A(as_of) from the book."""
        return loan.position(as_of, self.paid_amount_by(as_of))


payment_plans = st.builds(
    PaymentPlan,
    # Often the same day as the previous one: a read of that day takes the later one.
    gap_days=st.one_of(st.just(0), st.integers(1, 28)),
    # MAX_WEEKS: through the last installment (SHORT: one unit short of paid off).
    installments=st.one_of(st.integers(1, 6), st.just(MAX_WEEKS)),
    # About half the payments are written directly.
    direct=st.sampled_from([None, None, None, PART, PART, SHORT, PAST]),
    permille=st.integers(-999, 999),
    payoff=st.sampled_from([False, False, False, True]),
)


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
        prepayment_policy=draw(st.sampled_from(list(PrepaymentPolicy))),
        payoff_interest=draw(
            st.sampled_from([PayoffInterest.FULL, PayoffInterest.WAIVE_UNDUE] * 2)
        ),
    )
    payments = draw(st.lists(payment_plans, max_size=5).map(tuple))
    return LoanPlan(terms, draw(st.integers(-7, 14)), payments)


BOOKS = st.lists(loan_plans(), min_size=1, max_size=5)
# Dates around the books' loans: before any start, during and after their terms.
DATES = st.integers(-70, 200).map(lambda days: START + days * DAY)


# A book worked by hand into the generated tests (hypothesis `example`), so that
# every run meets these states whatever it draws:
#   1. 1,000,000 at 12.34 % over 3 weeks (374,466 twice, then 374,468), threshold 1:
#      week 1 paid on day 7 through the service, then on the same day half of
#      week 2 written directly (A = 561,699), then on day 21 one unit short of the
#      total (A = 1,123,399 >= 3 x 374,466: still c = 2, week 3 owes 1).
#   2. 5,000,000 at 10 % over 50 weeks (110,000): 249,920 written on day 3
#      (weeks 1-2 and 29,920 of week 3); on day 30 the rest of week 3 and week 4
#      through the service (A = 440,000, on the boundary again), then written
#      directly week 5 and half of week 6 (A = 605,000).
WORKED_BOOK = [
    LoanPlan(
        LoanTerms.create(
            principal_amount=1_000_000,
            interest_rate_bps=1234,
            weeks=3,
            start_date=START,
            delinquency_threshold=1,
        ),
        0,
        (
            PaymentPlan(7, 1),
            PaymentPlan(0, 1, PART, -500),
            PaymentPlan(14, MAX_WEEKS, SHORT),
        ),
    ),
    LoanPlan(
        LoanTerms.create(
            principal_amount=5_000_000, interest_rate_bps=1000, weeks=50, start_date=START
        ),
        0,
        (PaymentPlan(3, 2, PART, 272), PaymentPlan(27, 2), PaymentPlan(0, 1, PART, 500)),
    ),
]


def empty_database(engine) -> None:
    """Deletes every row a book writes (children first), for the next example. The
    journal refuses deletes (storage.journal.GUARD_DDL): its guard is lifted for
    the moment, in the same transaction."""
    with engine.begin() as conn:
        dialect = conn.dialect.name
        for statement in UNGUARD_DDL[dialect]:
            conn.execute(text(statement))
        for table in (
            journal_entries,
            ledger_totals,
            event_numbers,
            pending_events,
            events,
            installments,
            payments,
            loans,
            customers,
        ):
            conn.execute(delete(table))
        for statement in GUARD_DDL[dialect]:
            conn.execute(text(statement))


def _write_directly(engine, loan_id: int, terms: LoanTerms, paid: int, amount: int, on, today):
    """A payment of any amount, written as storage would hold it: the payments row
    (with paid_amount_after), the installments it completes, the loan row."""
    after = paid + amount
    covered_before, covered = terms.installments_covered(paid), terms.installments_covered(after)
    interest = terms.interest_part(after) - terms.interest_part(paid)
    status = stored_status(terms, after, today)
    first = covered_before + 1
    payment = Payment(
        id=0,  # drawn by the insert
        loan_id=loan_id,
        amount=amount,
        currency_code=terms.currency_code,
        payment_date=on,
        first_week=first,
        last_week=covered if covered >= first else first,  # the last week it reached
        idempotency_key=f"direct-{loan_id}-{after}",
        outstanding_after=terms.total_amount - after,
        status_after=status,
        principal_amount=amount - interest,
        interest_amount=interest,
        kind=PaymentKind.REGULAR,
    )
    now = dt.datetime.now(dt.UTC)
    row = payment_row(payment, after, now)
    del row["id"]
    with engine.begin() as conn:
        payment_id = conn.execute(insert(payments).values(row)).inserted_primary_key[0]
        if covered >= first:
            conn.execute(
                update(installments)
                .where(
                    installments.c.loan_id == loan_id,
                    installments.c.week_number.between(first, covered),
                )
                .values(paid_date=on, payment_id=payment_id)
            )
        conn.execute(
            update(loans)
            .where(loans.c.id == loan_id)
            .values(
                paid_amount=after,
                paid_count=covered,
                outstanding_amount=terms.total_amount - after,
                last_payment_date=on,
                status=status.value,
                updated_at=now,
            )
        )


def write_book(engine, billing: BillingService, clock, plans: list[LoanPlan]) -> list[WrittenLoan]:
    """Writes the loans and their payments (`billing` on the database of `engine`). A
    service payment settles what the plan wants, at most what is payable on its
    date, and is skipped when nothing is; a direct one is skipped once nothing is owed."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    book = []
    for n, plan in enumerate(plans):
        terms = plan.terms
        opened = terms.start_date + plan.opened_after_days * DAY
        clock.current = opened
        written = WrittenLoan(
            billing.create_loan(
                customer_id=customer,
                principal_amount=terms.principal_amount,
                interest_rate_bps=terms.interest_rate_bps,
                weeks=terms.weeks,
                start_date=terms.start_date,
                currency_code=terms.currency_code,
                delinquency_threshold=terms.delinquency_threshold,
                prepayment_policy=terms.prepayment_policy,
                payoff_interest=terms.payoff_interest,
                request_id=f"loan-{uuid.uuid4()}",
            ).loan.id
        )
        book.append(written)
        on = terms.start_date
        for i, pay in enumerate(plan.payments):
            on += pay.gap_days * DAY
            paid = written.paid_amount
            through = terms.amount_through(terms.installments_covered(paid) + pay.installments)
            if pay.payoff:
                if paid == terms.total_amount:
                    continue
                clock.current = max(on, opened)
                quote = billing.get_payoff_quote(loan_id=written.id, as_of=on)
                if quote.payoff_amount == 0:
                    continue
                amount = quote.payoff_amount + quote.waived_interest_amount
                billing.pay_off_loan(
                    loan_id=written.id,
                    amount=quote.payoff_amount,
                    payment_date=on,
                    idempotency_key=f"p{written.id}-{n}-{i}",
                )
                if quote.waived_interest_amount:
                    written.waived.append((on, quote.waived_interest_amount))
                    event("a payoff waives interest")
            elif pay.direct:
                owed = terms.total_amount - paid
                if owed == 0:
                    continue
                amount = min(max(through + pay.offset(terms) - paid, 1), owed)
                clock.current = max(on, opened)
                _write_directly(engine, written.id, terms, paid, amount, on, clock.current)
            else:
                k = min(pay.installments, payable_count(terms, paid, on))
                if k == 0:
                    continue
                clock.current = max(on, opened)
                amount = terms.amount_through(terms.installments_covered(paid) + k) - paid
                billing.make_payment(
                    loan_id=written.id,
                    amount=amount,
                    payment_date=on,
                    idempotency_key=f"p{written.id}-{n}-{i}",
                )
            written.history.append((on, paid + amount))
        after = written.paid_amount
        on_boundary = terms.amount_through(terms.installments_covered(after)) == after
        event("a loan ends " + ("on" if on_boundary else "OFF") + " an installment boundary")
    return book


# A payoff that waives interest, worked by hand: 5,000,000 at 10 % over 50 weeks
# (110,000), WAIVE_UNDUE; weeks 1-2 paid on day 14 (A = 220,000), paid off on
# day 30: j = 4 + 1 = 5, J(cum(5)) = 500,000 x 550,000 / 5,500,000 = 50,000, so
# 450,000 interest is waived and the payoff is 5,500,000 - 220,000 - 450,000 =
# 4,830,000 of cash; A = 5,500,000 after it.
PAYOFF_BOOK = [
    LoanPlan(
        LoanTerms.create(
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            start_date=START,
            payoff_interest=PayoffInterest.WAIVE_UNDUE,
        ),
        0,
        (PaymentPlan(14, 2), PaymentPlan(16, 1, payoff=True)),
    ),
]
