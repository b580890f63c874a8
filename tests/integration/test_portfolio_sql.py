"""Portfolio aggregates in SQL, on SQLite and PostgreSQL: a hand-worked portfolio,
a read of the past, and random portfolios checked against the pure domain."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from sqlalchemy import event, func, select

from loanbilling.domain.loan import LoanTerms, Position
from loanbilling.domain.payment import payable_count
from loanbilling.storage.database import transaction
from loanbilling.storage.portfolio import (
    PAR_BUCKETS,
    PortfolioFigures,
    RiskBucketFigures,
    StatusFigures,
    portfolio_summary,
)
from loanbilling.storage.tables import loans, payments
from tests.conftest import START

DAY = dt.timedelta(days=1)
AS_OF = START + 70 * DAY  # 2026-03-16, a Monday: installment 10 of loans started at START is due
PAST = START + 30 * DAY  # 2026-02-04


def summary(engine, as_of: dt.date, currency_code: str = "IDR") -> PortfolioFigures:
    with transaction(engine, write=False) as conn:
        return portfolio_summary(conn, as_of, currency_code)


def payments_through(engine, as_of: dt.date, currency_code: str = "IDR") -> int:
    """Sum of payments dated on or before as_of, straight from the payments table."""
    query = (
        select(func.coalesce(func.sum(payments.c.amount), 0))
        .join(loans, loans.c.id == payments.c.loan_id)
        .where(loans.c.currency_code == currency_code, payments.c.payment_date <= as_of)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def buckets(*rows: tuple[int, int]) -> tuple[RiskBucketFigures, ...]:
    return tuple(
        RiskBucketFigures(lo, hi, n, o) for (lo, hi), (n, o) in zip(PAR_BUCKETS, rows, strict=True)
    )


@pytest.fixture
def portfolio(billing, clock):
    """Seven IDR loans counted at AS_OF, one starting after it, one in USD.

    Day numbers are days since the loan's start; installment k is due on day 7k.
    """
    clock.current = AS_OF
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    keys = itertools.count()

    def loan(principal, rate, weeks, start, *paid, threshold=2, currency="IDR"):
        loan = billing.create_loan(
            customer_id=customer,
            principal_amount=principal,
            interest_rate_bps=rate,
            weeks=weeks,
            start_date=start,
            currency_code=currency,
            delinquency_threshold=threshold,
        ).loan
        for on, amount in paid:
            billing.make_payment(
                loan_id=loan.id, amount=amount, payment_date=on, idempotency_key=f"k{next(keys)}"
            )
        return loan

    # A: the canonical loan, 110,000 a week. Weeks 1-5 paid on day 35, 6-10 on AS_OF (day 70).
    loan(5_000_000, 1000, 50, START, (START + 35 * DAY, 550_000), (AS_OF, 550_000))
    # B: 2,200,000 over 20 weeks = 110,000, from a Friday. 4 weeks on day 28, 4 on day 56.
    b = START - 3 * DAY
    loan(2_000_000, 1000, 20, b, (b + 28 * DAY, 440_000), (b + 56 * DAY, 440_000))
    # C: interest-free 1,000,000 over 10 weeks = 100,000; only week 1 paid, on day 7.
    loan(1_000_000, 0, 10, START, (START + 7 * DAY, 100_000))
    # D: 1,000,000 at 12.34 % = 1,123,400 over 3 weeks: 374,466 twice, then 374,468.
    loan(1_000_000, 1234, 3, START, (START + 14 * DAY, 748_932), (START + 21 * DAY, 374_468))
    # F: 3,300,000 over 30 weeks = 110,000, from a Wednesday, threshold 1; weeks 1-9 on day 63.
    f = START - 5 * DAY
    loan(3_000_000, 1000, 30, f, (f + 63 * DAY, 990_000), threshold=1)
    # G: starts on AS_OF, 700,000 over 7 weeks = 100,000; week 1 paid ahead on day 0.
    loan(700_000, 0, 7, AS_OF, (AS_OF, 100_000))
    # H: 600,000 over 12 weeks = 50,000, threshold 3; weeks 1-7 on day 49.
    loan(500_000, 2000, 12, START, (START + 49 * DAY, 350_000), threshold=3)
    # Not counted in IDR at AS_OF: a loan starting the day after, and one in USD.
    loan(5_000_000, 1000, 50, AS_OF + DAY)
    loan(1_000, 1000, 10, START, currency="USD")


def test_hand_worked_portfolio(engine, portfolio):
    # At AS_OF (paid, installments due before / on or before AS_OF, missed, days past due):
    #   A paid 10, due 9/10, missed 0: ACTIVE, owes 4,400,000, overdue 0
    #   B day 73: paid 8, due 10/10, missed 2, dpd 73-63=10: DELINQUENT, owes 1,320,000,
    #     overdue 220,000
    #   C paid 1, due 9/10, missed 8, dpd 70-14=56: DELINQUENT, owes 900,000, overdue 800,000
    #   D paid 3 of 3: PAID, owes 0
    #   F day 75: paid 9, due 10/10, missed 1 >= threshold 1, dpd 75-70=5: DELINQUENT,
    #     owes 2,310,000, overdue 110,000
    #   G day 0: paid 1, due 0/0: ACTIVE, owes 600,000
    #   H paid 7, due 9/10, missed 2 < threshold 3, dpd 70-56=14: ACTIVE, owes 250,000,
    #     overdue 100,000
    figures = summary(engine, AS_OF)
    assert figures == PortfolioFigures(
        loan_count=7,
        active=StatusFigures(3, 5_000_000 + 700_000 + 500_000, 4_400_000 + 600_000 + 250_000),
        delinquent=StatusFigures(
            3, 2_000_000 + 1_000_000 + 3_000_000, 1_320_000 + 900_000 + 2_310_000
        ),
        paid=StatusFigures(1, 1_000_000, 0),
        principal_disbursed=13_200_000,
        # 5,500,000 + 2,200,000 + 1,000,000 + 1,123,400 + 3,300,000 + 700,000 + 600,000
        total_repayable=14_423_400,
        # Every payment above: all are dated on or before AS_OF.
        collected_amount=14_423_400 - 9_780_000,
        outstanding_amount=9_780_000,
        overdue_amount=220_000 + 800_000 + 110_000 + 100_000,
        # Installments due on or before AS_OF, by loan: A 10, B 10, C 10, D 3, F 10, G 0, H 10.
        due_amount=1_100_000 + 1_100_000 + 1_000_000 + 1_123_400 + 1_100_000 + 0 + 500_000,
        # Paid toward those: all but G's week 1, which is not due until day 7.
        collected_toward_due=4_643_400 - 100_000,
        portfolio_at_risk=buckets(
            (1, 2_310_000),  # F, 5 days
            (1, 1_320_000),  # B, 10 days
            (1, 250_000),  # H, 14 days: the lower bound is inclusive
            (1, 900_000),  # C, 56 days
        ),
        delinquency_rate_bps=3 * 10_000 // 6,
        collection_rate_bps=4_543_400 * 10_000 // 5_923_400,  # 7670
    )
    assert figures.collected_amount == payments_through(engine, AS_OF) == 4_643_400
    assert figures.collection_rate_bps == 7670


def test_past_as_of_ignores_later_payments_and_loans(engine, portfolio):
    # At PAST (day 30 for A, C, D, H; 33 for B; 35 for F); G has not started:
    #   A paid 0 (first payment day 35), due 4/4, dpd 30-7=23: DELINQUENT, overdue 440,000
    #   B paid 4 (day 28), due 4/4: ACTIVE, owes 1,760,000
    #   C paid 1, due 4/4, missed 3, dpd 30-14=16: DELINQUENT, overdue 300,000
    #   D paid 3 (days 14 and 21): PAID
    #   F paid 0 (payment day 63), due 4/5 (week 5 due on PAST), dpd 35-7=28: DELINQUENT,
    #     overdue 440,000
    #   H paid 0 (payment day 49), due 4/4, missed 4 >= 3, dpd 23: DELINQUENT, overdue 200,000
    figures = summary(engine, PAST)
    assert figures == PortfolioFigures(
        loan_count=6,
        active=StatusFigures(1, 2_000_000, 1_760_000),
        delinquent=StatusFigures(
            4,
            5_000_000 + 1_000_000 + 3_000_000 + 500_000,
            5_500_000 + 900_000 + 3_300_000 + 600_000,
        ),
        paid=StatusFigures(1, 1_000_000, 0),
        principal_disbursed=12_500_000,
        total_repayable=5_500_000 + 2_200_000 + 1_000_000 + 1_123_400 + 3_300_000 + 600_000,
        collected_amount=440_000 + 100_000 + 1_123_400,
        outstanding_amount=5_500_000 + 1_760_000 + 900_000 + 0 + 3_300_000 + 600_000,
        overdue_amount=440_000 + 300_000 + 440_000 + 200_000,
        due_amount=440_000 + 440_000 + 400_000 + 1_123_400 + 550_000 + 200_000,
        collected_toward_due=440_000 + 100_000 + 1_123_400,
        portfolio_at_risk=buckets(
            (0, 0), (0, 0), (4, 5_500_000 + 900_000 + 3_300_000 + 600_000), (0, 0)
        ),
        delinquency_rate_bps=4 * 10_000 // 5,
        collection_rate_bps=1_663_400 * 10_000 // 3_153_400,  # 5274
    )
    assert figures.collected_amount == payments_through(engine, PAST) == 1_663_400


def test_one_currency_at_a_time(engine, portfolio):
    # The USD loan: 1,100 over 10 weeks = 110, nothing paid, 9 weeks missed, 63 days past due.
    usd = summary(engine, AS_OF, "USD")
    assert usd == PortfolioFigures(
        loan_count=1,
        active=StatusFigures(0, 0, 0),
        delinquent=StatusFigures(1, 1_000, 1_100),
        paid=StatusFigures(0, 0, 0),
        principal_disbursed=1_000,
        total_repayable=1_100,
        collected_amount=0,
        outstanding_amount=1_100,
        overdue_amount=990,
        due_amount=1_100,
        collected_toward_due=0,
        portfolio_at_risk=buckets((0, 0), (0, 0), (0, 0), (1, 1_100)),
        delinquency_rate_bps=10_000,
        collection_rate_bps=0,
    )
    nothing = summary(engine, AS_OF, "EUR")
    assert nothing == summary(engine, START - 6 * DAY)  # before any loan started
    assert nothing.loan_count == nothing.due_amount == nothing.collection_rate_bps == 0
    assert nothing.delinquency_rate_bps == 0


def test_one_statement_returning_one_row(engine, portfolio):
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        summary(engine, PAST)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # SQLite's explicit BEGIN aside, the summary is one query: no loan is loaded.
    queries = [s for s in statements if s != "BEGIN"]
    assert len(queries) == 1
    assert queries[0].lstrip().startswith("WITH positions AS MATERIALIZED")


# Random portfolios against the pure domain.


def reference(book, as_of: dt.date, currency_code: str) -> PortfolioFigures:
    """The same figures from loanbilling.domain.loan.Position, one loan at a time."""
    rows = []
    for terms, paid_log in book:
        if terms.currency_code != currency_code or terms.start_date > as_of:
            continue
        paid = max((week for on, week in paid_log if on <= as_of), default=0)
        due_weeks = min((as_of - terms.start_date).days // 7, terms.weeks)
        rows.append((terms, Position(terms, paid, as_of), due_weeks))

    def status(name):
        picked = [(t, p) for t, p, _ in rows if p.status.name == name]
        return StatusFigures(
            len(picked),
            sum(t.principal_amount for t, _ in picked),
            sum(p.outstanding_amount for _, p in picked),
        )

    def in_bucket(position, low, high):
        days = position.days_past_due
        return low <= days and (high is None or days <= high)

    due = sum(t.amount_through(w) for t, _, w in rows)
    toward = sum(min(t.amount_through(p.paid_count), t.amount_through(w)) for t, p, w in rows)
    active, delinquent = status("ACTIVE"), status("DELINQUENT")
    unpaid = active.loan_count + delinquent.loan_count
    return PortfolioFigures(
        loan_count=len(rows),
        active=active,
        delinquent=delinquent,
        paid=status("PAID"),
        principal_disbursed=sum(t.principal_amount for t, _, _ in rows),
        total_repayable=sum(t.total_amount for t, _, _ in rows),
        collected_amount=sum(t.amount_through(p.paid_count) for t, p, _ in rows),
        outstanding_amount=sum(p.outstanding_amount for _, p, _ in rows),
        overdue_amount=sum(p.overdue_amount for _, p, _ in rows),
        due_amount=due,
        collected_toward_due=toward,
        portfolio_at_risk=tuple(
            RiskBucketFigures(
                low,
                high,
                sum(1 for _, p, _ in rows if in_bucket(p, low, high)),
                sum(p.outstanding_amount for _, p, _ in rows if in_bucket(p, low, high)),
            )
            for low, high in PAR_BUCKETS
        ),
        delinquency_rate_bps=delinquent.loan_count * 10_000 // unpaid if unpaid else 0,
        collection_rate_bps=toward * 10_000 // due if due else 0,
    )


def test_random_portfolio_matches_the_domain(engine, billing, clock):
    rng = random.Random(20260105)
    horizon = START + 300 * DAY
    clock.current = horizon
    customer = billing.create_customer(name="Budi", email="budi@example.com", phone="").id
    book = []
    for n in range(30):
        terms = LoanTerms.create(
            principal_amount=rng.choice([50_000, 1_000_000, 5_000_000, rng.randint(10_000, 9**9)]),
            interest_rate_bps=rng.choice([0, 1000, rng.randint(0, 5000)]),
            weeks=rng.randint(1, 30),
            start_date=START + rng.randint(-120, 200) * DAY,
            currency_code=rng.choice(["IDR", "IDR", "USD"]),
            delinquency_threshold=rng.randint(1, 3),
        )
        loan_id = billing.create_loan(
            customer_id=customer,
            principal_amount=terms.principal_amount,
            interest_rate_bps=terms.interest_rate_bps,
            weeks=terms.weeks,
            start_date=terms.start_date,
            currency_code=terms.currency_code,
            delinquency_threshold=terms.delinquency_threshold,
        ).loan.id
        # Payments at random intervals, of 1..all payable installments, some weeks skipped.
        paid_log, paid, on = [], 0, terms.start_date
        while paid < terms.weeks:
            on += rng.randint(1, 21) * DAY
            if on > horizon:
                break
            payable = payable_count(terms, paid, on)
            if payable == 0 or rng.randrange(10) < 3:
                continue
            k = rng.randint(1, payable)
            amount = terms.amount_through(paid + k) - terms.amount_through(paid)
            billing.make_payment(
                loan_id=loan_id, amount=amount, payment_date=on, idempotency_key=f"r{n}-{on}"
            )
            paid += k
            paid_log.append((on, paid))
        book.append((terms, paid_log))

    dates = [START - 200 * DAY, START, horizon] + [
        START + rng.randint(-100, 300) * DAY for _ in range(8)
    ]
    seen_statuses = set()
    for as_of in dates:
        for currency_code in ("IDR", "USD"):
            figures = summary(engine, as_of, currency_code)
            assert figures == reference(book, as_of, currency_code), (as_of, currency_code)
            assert figures.collected_amount == payments_through(engine, as_of, currency_code)
            seen_statuses |= {
                name
                for name in ("active", "delinquent", "paid")
                if getattr(figures, name).loan_count
            }
    # The portfolio exercised every status, so the comparison meant something.
    assert seen_statuses == {"active", "delinquent", "paid"}
