"""Portfolio aggregates in SQL, on SQLite and PostgreSQL: a hand-worked portfolio,
a read of the past, and generated books (paid amounts on installment boundaries
and off them; reversed payments; loans written off before or after the date,
with recoveries, some reversed) checked against the domain's portfolio_figures
(loanbilling.domain.portfolio), the only oracle."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import event as hyp_event
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Integer, event, func, literal, select, union_all

from loanbilling.domain.loan import MAX_WEEKS, LoanTerms, Position
from loanbilling.domain.payment import PaymentKind
from loanbilling.domain.portfolio import (
    PortfolioFigures,
    StatusFigures,
    in_portfolio,
    portfolio_figures,
)
from loanbilling.domain.write_off import write_off_amounts
from loanbilling.services.billing import BillingService
from loanbilling.storage.portfolio import portfolio_summary
from loanbilling.storage.sql import installments_covered
from loanbilling.storage.tables import loans, payments
from tests.conftest import START
from tests.support.api import new_key
from tests.support.generated_loans import (
    BOOKS,
    DATES,
    PAYOFF_BOOK,
    PROPERTY_SETTINGS,
    WORKED_BOOK,
    WrittenLoan,
    empty_database,
    write_book,
)
from tests.support.hand_worked_portfolio import AS_OF, FIGURES_AT_AS_OF, buckets

DAY = dt.timedelta(days=1)
PAST = START + 30 * DAY  # 2026-02-04


def summary(engine, as_of: dt.date, currency_code: str = "IDR") -> PortfolioFigures:
    return portfolio_summary(engine, as_of, currency_code)


@pytest.fixture
def books(storage, clock):
    """The service on the database's own write path: the summary reads what any writes."""
    return BillingService(storage, clock)


def payments_through(
    engine, as_of: dt.date, currency_code: str = "IDR", kind: PaymentKind | None = None
) -> int:
    """Sum of the live payments (of `kind`, if given) dated on or before as_of,
    straight from the payments table."""
    query = (
        select(func.coalesce(func.sum(payments.c.amount), 0))
        .join(loans, loans.c.id == payments.c.loan_id)
        .where(
            loans.c.currency_code == currency_code,
            payments.c.payment_date <= as_of,
            payments.c.reversal_date.is_(None),
        )
    )
    if kind is not None:
        query = query.where(payments.c.kind == kind.value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.fixture
def portfolio(books, clock):
    """Seven IDR loans counted at AS_OF, one starting after it, one in USD.

    Day numbers are days since the loan's start; installment k is due on day 7k.
    """
    clock.current = AS_OF
    customer = books.create_customer(name="Siti", email="siti@example.com", phone="").id
    keys = itertools.count()

    def loan(principal, rate, weeks, start, *paid, threshold=2, currency="IDR"):
        loan = books.create_loan(
            customer_id=customer,
            principal_amount=principal,
            interest_rate_bps=rate,
            weeks=weeks,
            start_date=start,
            currency_code=currency,
            delinquency_threshold=threshold,
            request_id=new_key("loan"),
        ).loan
        for on, amount in paid:
            books.make_payment(
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
    figures = summary(engine, AS_OF)
    assert figures == FIGURES_AT_AS_OF
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
        written_off=StatusFigures(0, 0, 0),
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
        written_off=StatusFigures(0, 0, 0),
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


# Generated books against the domain.


@dataclass(frozen=True)
class LossPlan:
    """What befalls a loan after its book's payments: reversals of some of them
    (each the live payment at that index, modulo their number), then perhaps a
    write-off some days after its latest live payment, and recoveries after it."""

    reversals: tuple[int, ...] = ()
    write_off_after_days: int | None = None  # None: not written off
    # (days after the write-off or the previous recovery, permille of what is
    # owed (at least 1), whether it is then reversed)
    recoveries: tuple[tuple[int, int, bool], ...] = ()


loss_plans = st.builds(
    LossPlan,
    reversals=st.lists(st.integers(0, 9), max_size=2).map(tuple),
    write_off_after_days=st.one_of(st.none(), st.just(0), st.integers(1, 60)),
    recoveries=st.lists(
        st.tuples(
            st.one_of(st.just(0), st.integers(1, 40)),
            st.one_of(st.integers(1, 999), st.just(1000)),  # 1000: all that is owed
            st.booleans(),
        ),
        max_size=3,
    ).map(tuple),
)
LOSSES = st.lists(loss_plans, min_size=5, max_size=5)  # one for each loan of a book


@dataclass
class Ledger:
    """A loan's payments as the test wrote them, the oracle's A(D): by id, (date,
    what it adds to A, the interest it waived); the ids reversed; the write-off's
    date and the paid amount A it wrote off at."""

    terms: LoanTerms
    payments: dict[int, tuple[dt.date, int, int]]
    reversed: set[int] = field(default_factory=set)
    write_off: tuple[dt.date, int] | None = None

    @property
    def live(self) -> list[int]:
        return [pid for pid in self.payments if pid not in self.reversed]

    def paid_amount_by(self, on: dt.date = dt.date.max) -> int:
        return sum(self.payments[pid][1] for pid in self.live if self.payments[pid][0] <= on)

    def waived_by(self, on: dt.date) -> int:
        return sum(self.payments[pid][2] for pid in self.live if self.payments[pid][0] <= on)

    def position(self, as_of: dt.date) -> Position:
        written_off_on = self.write_off[0] if self.write_off else None
        return Position(self.terms, self.paid_amount_by(as_of), as_of, written_off_on)


def ledger_of(storage, written: WrittenLoan) -> Ledger:
    """A loan's payments as its book wrote them, with the ids storage gave them (the
    payments of one loan were written in the order of their ids)."""
    with storage.reading() as uow:
        loan = uow.loans.get(written.id)
        stored = uow.payments.of_loan(written.id)
    after = [paid for _, paid in written.history]
    rows = [
        [day, now - then, 0]
        for (day, _), (then, now) in zip(
            written.history, itertools.pairwise([0, *after]), strict=True
        )
    ]
    if written.waived:  # a payoff that waives is the last payment: it pays the loan off
        [(_, rows[-1][2])] = written.waived
    assert [
        [p.payment_date, p.amount + p.waived_interest_amount, p.waived_interest_amount]
        for p in stored
    ] == rows
    return Ledger(loan.terms, {p.id: tuple(row) for p, row in zip(stored, rows, strict=True)})


def befall(billing, clock, loan_id: int, ledger: Ledger, plan: LossPlan) -> None:
    """Writes `plan` through the service, and into `ledger`."""
    terms = ledger.terms

    def reverse(payment_id: int) -> None:
        # Today: on or after every payment of the loan.
        clock.current = max(day for day, _, _ in ledger.payments.values())
        billing.reverse_payment(
            payment_id=payment_id, reason="bounced", idempotency_key=f"rev-{payment_id}"
        )
        ledger.reversed.add(payment_id)

    for i in plan.reversals:
        if ledger.live:
            reverse(ledger.live[i % len(ledger.live)])
    paid = ledger.paid_amount_by()
    if plan.write_off_after_days is None or paid == terms.total_amount:  # PAID: refused
        return
    latest = max((ledger.payments[pid][0] for pid in ledger.live), default=terms.start_date)
    on = latest + plan.write_off_after_days * DAY
    clock.current = on
    billing.write_off_loan(
        loan_id=loan_id, reason="absconded", idempotency_key=f"w-{loan_id}", write_off_date=on
    )
    ledger.write_off = (on, paid)
    for k, (gap, permille, reversed_) in enumerate(plan.recoveries):
        owed = terms.total_amount - ledger.paid_amount_by()
        if owed == 0:
            break
        on += gap * DAY
        amount = max(owed * permille // 1000, 1)
        clock.current = on
        done = billing.make_payment(
            loan_id=loan_id, amount=amount, payment_date=on, idempotency_key=f"rec-{loan_id}-{k}"
        )
        assert done.payment.kind is PaymentKind.RECOVERY
        ledger.payments[done.payment.id] = (on, amount, 0)
        if reversed_:
            reverse(done.payment.id)
            hyp_event("a recovery is reversed")
    if ledger.paid_amount_by() == terms.total_amount:
        hyp_event("a written-off loan owes nothing")


# The worked book: the first loan written off on day 23 one unit short of paid
# off, that unit recovered on day 30 (outstanding 0, still WRITTEN_OFF); the
# second's first payment (day 3) reversed, the later ones re-allocated, written
# off on day 40, a recovery of half the outstanding on day 45 reversed, then one
# of a quarter the same day.
WORKED_LOSSES = [
    LossPlan(write_off_after_days=2, recoveries=((7, 1000, False),)),
    LossPlan(reversals=(0,), write_off_after_days=10, recoveries=((5, 500, True), (0, 250, False))),
]
# The payoff book: the payoff reversed (450,000 waived no more), the loan written
# off on day 30 (16 days after its latest live payment), recovered in full on day 37.
PAYOFF_LOSSES = [LossPlan(reversals=(1,), write_off_after_days=16, recoveries=((7, 1000, False),))]


@PROPERTY_SETTINGS
@given(plans=BOOKS, losses=LOSSES, dates=st.lists(DATES, min_size=1, max_size=2))
# The worked book on day 3 and day 7 (a past read takes the second of day 7's
# payments), day 20 (the first loan partly covered, 187,233 overdue) and day 25
# (the first one unit short of paid off after its last due date, c = 2, 1 overdue;
# the second partly covered, 80,080 overdue); then as it is written off.
@example(plans=WORKED_BOOK, losses=[LossPlan()] * 2, dates=[START + 20 * DAY, START + 25 * DAY])
@example(plans=WORKED_BOOK, losses=WORKED_LOSSES, dates=[START + 30 * DAY, START + 45 * DAY])
# The payoff book the day before its payoff and on it (450,000 waived); then with
# the payoff reversed and the loan written off.
@example(plans=PAYOFF_BOOK, losses=[LossPlan()], dates=[START + 29 * DAY, START + 30 * DAY])
@example(plans=PAYOFF_BOOK, losses=PAYOFF_LOSSES, dates=[START + 30 * DAY, START + 37 * DAY])
def test_generated_books_match_the_domain(engine, storage, books, clock, plans, losses, dates):
    empty_database(engine)
    written = write_book(engine, books, clock, plans)
    ledgers = [ledger_of(storage, w) for w in written]
    for w, ledger, plan in zip(written, ledgers, losses, strict=False):
        befall(books, clock, w.id, ledger, plan)
    with storage.reading() as uow:
        loans_now = [uow.loans.get(w.id) for w in written]
    assert [loan.paid_amount for loan in loans_now] == [lg.paid_amount_by() for lg in ledgers]
    for loan, ledger in zip(loans_now, ledgers, strict=True):
        if ledger.write_off is None:
            assert loan.write_off is None
            continue
        on, paid = ledger.write_off
        expected = write_off_amounts(ledger.terms, paid)
        assert (loan.write_off.on, loan.write_off.principal_amount) == (
            on,
            expected.principal_amount,
        )
        assert loan.write_off.interest_amount == expected.interest_amount
        hyp_event("a loan is written off")
        if ledger.paid_amount_by() > paid:
            hyp_event("a written-off loan recovers")
    if any(ledger.reversed for ledger in ledgers):
        hyp_event("a payment is reversed")
    # And on each date a loan was paid before its latest payment: a read of the past
    # takes the last of that day's payments. And on each write-off's date and the
    # day before it.
    paid_on = set()
    for ledger in ledgers:
        days = [day for day, _, _ in ledger.payments.values()]
        paid_on |= {day for day in days if day < max(days)}
    written_off_on = {
        ledger.write_off[0] - k * DAY for ledger in ledgers if ledger.write_off for k in (0, 1)
    }
    for as_of in dates + sorted(paid_on | written_off_on):
        # Each loan at the end of as_of, with A(as_of) from the payments the test
        # wrote, the interest its live payoffs dated by then waived, and its write-off.
        book = [
            (ledger.position(as_of), ledger.waived_by(as_of), loan.write_off)
            for ledger, loan in zip(ledgers, loans_now, strict=True)
        ]
        for currency_code in ("IDR", "USD"):
            figures = storage.portfolio(as_of, currency_code)
            assert figures == portfolio_figures(
                (at, waived, write_off)
                for at, waived, write_off in book
                if in_portfolio(at.terms, as_of, currency_code)
            ), (as_of, currency_code)
            # Cash only: a payoff's waived interest is in A, not in payments.amount.
            assert figures.collected_amount == payments_through(engine, as_of, currency_code)
            assert figures.recovered_amount == payments_through(
                engine, as_of, currency_code, PaymentKind.RECOVERY
            )
            assert figures.total_repayable == (
                figures.collected_amount
                + figures.outstanding_amount
                + figures.waived_interest_amount
            )


# c(A), the one count the portfolio computes from A in SQL (the sweep reads it
# materialised), on its own: many paid amounts, the boundaries and their
# neighbours most of all, in one statement per example.


@st.composite
def terms_and_paid_amounts(draw) -> tuple[LoanTerms, list[int]]:
    weeks = draw(st.one_of(st.integers(1, 13), st.integers(1, MAX_WEEKS)))
    terms = LoanTerms.create(
        # Up to the largest amounts: c(A) divides, it multiplies no two amounts.
        principal_amount=draw(st.one_of(st.integers(weeks, 10**6), st.integers(weeks, 2**61))),
        interest_rate_bps=draw(st.integers(0, 5000)),
        weeks=weeks,
        start_date=START,
    )
    total, weekly, weeks = terms.total_amount, terms.weekly_payment, terms.weeks
    anywhere = st.integers(0, total)
    near = st.builds(
        lambda k, d: min(max(terms.amount_through(k) + d, 0), total),
        st.integers(0, weeks),
        st.integers(-1, 1),
    )
    edges = [0, 1, total - 1, total, weekly * weeks - 1, weekly * weeks, weekly * (weeks - 1)]
    amounts = draw(st.lists(st.one_of(near, anywhere), min_size=1, max_size=20))
    return terms, sorted({a for a in edges + amounts if 0 <= a <= total})


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(case=terms_and_paid_amounts())
def test_installments_covered_matches_the_domain(engine, case):
    terms, amounts = case
    rows = union_all(
        *(
            select(
                literal(a, BigInteger).label("paid_amount"),
                literal(terms.total_amount, BigInteger).label("total_amount"),
                literal(terms.weekly_payment, BigInteger).label("weekly_payment"),
                literal(terms.weeks, Integer).label("weeks"),
            )
            for a in amounts
        )
    ).subquery()
    query = select(rows.c.paid_amount, installments_covered(rows.c.paid_amount, rows))
    with engine.connect() as conn:
        got = dict(conn.execute(query).all())
    assert got == {a: terms.installments_covered(a) for a in amounts}
