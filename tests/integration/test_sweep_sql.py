"""The sweep's set-based SQL against the pure domain, on SQLite and PostgreSQL:
random portfolios swept twice, in batches of several sizes, must hold exactly
the events (and stored statuses) the rules give, each written once."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from loanbilling.domain.events import EventKind, NewEvent, delinquent_event
from loanbilling.domain.loan import LoanStatus, LoanTerms, Position
from loanbilling.services.sweep import SweepService
from loanbilling.storage.tables import events, loans
from tests.conftest import START

DAY = dt.timedelta(days=1)
SWEEP_KINDS = {
    EventKind.INSTALLMENT_MISSED.value,
    EventKind.PAYMENT_DUE_SOON.value,
    EventKind.LOAN_DELINQUENT.value,
}
EVENT_FIELDS = (
    "kind",
    "loan_id",
    "customer_id",
    "week_number",
    "business_date",
    "amount",
    "due_date",
    "missed_installments",
    "overdue_amount",
    "days_past_due",
    "outstanding_amount",
    "currency_code",
)


def seed_portfolio(billing, clock, rng: random.Random) -> None:
    """Loans of varied terms (some with a larger last installment), thresholds and
    currencies, started on various days, paid on time for a random number of weeks.
    The clock follows each write, so stored statuses are what the service stores."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    for n in range(40):
        weeks = rng.choice([1, 2, 3, 5, 10, 13, 50])
        start = START + rng.randrange(0, 60) * DAY
        terms = LoanTerms.create(
            principal_amount=rng.choice([1_000, 99_999, 5_000_000, 1_234_567]),
            interest_rate_bps=rng.choice([0, 1000, 1234]),
            weeks=weeks,
            start_date=start,
            currency_code=rng.choice(["IDR", "USD"]),
            delinquency_threshold=rng.choice([1, 2, 2, 3]),
        )
        clock.current = start
        loan = billing.create_loan(
            customer_id=customer,
            principal_amount=terms.principal_amount,
            interest_rate_bps=terms.interest_rate_bps,
            weeks=weeks,
            start_date=start,
            currency_code=terms.currency_code,
            delinquency_threshold=terms.delinquency_threshold,
        ).loan
        for week in range(1, rng.randint(0, weeks) + 1):
            clock.current = terms.due_date(week)
            billing.make_payment(
                loan_id=loan.id,
                amount=terms.installment(week).amount,
                payment_date=clock.current,
                idempotency_key=f"{n}-{week}",
            )


def expected_events(conn, as_of: dt.date, reminder_days: int) -> tuple[list[NewEvent], set[int]]:
    """What one sweep at `as_of` writes by the rules, from the stored loan rows
    (each loan's payments as it has them now); and the loans it turns DELINQUENT."""
    expected: list[NewEvent] = []
    flipped: set[int] = set()
    for row in conn.execute(select(loans).where(loans.c.status != LoanStatus.PAID.value)):
        terms = LoanTerms.create(
            principal_amount=row.principal_amount,
            interest_rate_bps=row.interest_rate_bps,
            weeks=row.weeks,
            start_date=row.start_date,
            currency_code=row.currency_code,
            delinquency_threshold=row.delinquency_threshold,
        )
        at = Position(terms, row.paid_count, as_of)
        due_before = terms.weeks_due_before(as_of)
        due_soon_before = terms.weeks_due_before(as_of + (reminder_days + 1) * DAY)
        for week in range(row.paid_count + 1, max(due_soon_before, row.paid_count) + 1):
            kind = (
                EventKind.INSTALLMENT_MISSED if week <= due_before else EventKind.PAYMENT_DUE_SOON
            )
            installment = terms.installment(week)
            expected.append(
                NewEvent(
                    kind=kind,
                    loan_id=row.id,
                    customer_id=row.customer_id,
                    week_number=week,
                    business_date=as_of,
                    amount=installment.amount,
                    due_date=installment.due_date,
                    missed_installments=at.missed_installments,
                    overdue_amount=at.overdue_amount,
                    days_past_due=at.days_past_due,
                    outstanding_amount=at.outstanding_amount,
                    currency_code=terms.currency_code,
                )
            )
        if row.status == LoanStatus.ACTIVE.value and at.delinquent:
            flipped.add(row.id)
            expected.append(delinquent_event(row.id, row.customer_id, at))
    return expected, flipped


def stored_sweep_events(conn) -> list[tuple]:
    query = select(*(events.c[f] for f in EVENT_FIELDS)).where(events.c.kind.in_(SWEEP_KINDS))
    return sorted(conn.execute(query).all())


def as_row(event: NewEvent) -> tuple:
    values = {f: getattr(event, f) for f in EVENT_FIELDS}
    values["kind"] = event.kind.value
    return tuple(values[f] for f in EVENT_FIELDS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sweeps_write_what_the_rules_give(engine, billing, clock, seed):
    rng = random.Random(seed)
    seed_portfolio(billing, clock, rng)
    with engine.connect() as conn:
        before = {r.id: r.status for r in conn.execute(select(loans.c.id, loans.c.status))}
        # Events the service wrote itself (creation) keep their rows: the sweep skips them.
        written = {(r[1], r[0], r[3]): r for r in stored_sweep_events(conn)}
    # Two sweeps: the second, later one meets the first one's events and flips.
    first = START + rng.randrange(70, 120) * DAY
    for as_of in (first, first + rng.randrange(0, 30) * DAY):
        reminder_days = rng.randrange(0, 7)
        clock.current = as_of
        with engine.connect() as conn:
            expected, flipped = expected_events(conn, as_of, reminder_days)
        new = {}
        for event in expected:
            key = (event.loan_id, event.kind.value, event.week_number)
            if key not in written:
                new[key] = as_row(event)
        report = SweepService(
            engine, clock, batch_size=rng.choice([1, 3, 7, 1000]), reminder_days=reminder_days
        ).run()
        written.update(new)
        assert (report.events_written, report.newly_delinquent) == (len(new), len(flipped))
        assert report.loans_checked == sum(s != LoanStatus.PAID.value for s in before.values())
        with engine.connect() as conn:
            assert stored_sweep_events(conn) == sorted(written.values())
            after = {r.id: r.status for r in conn.execute(select(loans.c.id, loans.c.status))}
        for loan_id in flipped:
            before[loan_id] = LoanStatus.DELINQUENT.value
        assert after == before


def test_a_loans_delinquent_event_follows_its_missed_installments(engine, billing, clock):
    """Subscribers read events in sequence (id) order: within a loan, the sweep's
    "loan delinquent" comes after the "installment missed" events that caused it."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    for _ in range(5):
        billing.create_loan(
            customer_id=customer,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            start_date=START,
        )
    clock.current = START + 22 * DAY  # weeks 1-3 missed, week 4 due on day 28
    report = SweepService(engine, clock, reminder_days=6).run()
    assert (report.newly_delinquent, report.events_written) == (5, 5 * (3 + 1 + 1))
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.loan_id, events.c.kind, events.c.week_number)
            .where(events.c.kind.in_(SWEEP_KINDS))
            .order_by(events.c.id)
        ).all()
    for loan_id in {r.loan_id for r in rows}:
        assert [(r.kind, r.week_number) for r in rows if r.loan_id == loan_id] == [
            ("INSTALLMENT_MISSED", 1),
            ("INSTALLMENT_MISSED", 2),
            ("INSTALLMENT_MISSED", 3),
            ("PAYMENT_DUE_SOON", 4),
            ("LOAN_DELINQUENT", 1),
        ]


def test_sweeps_racing_payments_flip_and_cure_consistently(engine, billing, clock):
    """Two sweeps and catch-up payments on the same loans at once: nothing fails, a
    loan paid up ends ACTIVE (cured if a sweep flipped it first), an unpaid one
    ends DELINQUENT with one "loan delinquent" event."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    ids = [
        billing.create_loan(
            customer_id=customer,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            start_date=START,
        ).loan.id
        for _ in range(24)
    ]
    clock.current = START + 22 * DAY  # weeks 1-3 missed: delinquent
    paid = ids[::2]
    sweeps = [SweepService(engine, clock, batch_size=5) for _ in range(2)]
    barrier = threading.Barrier(len(sweeps) + 1)

    def sweep(service):
        barrier.wait()
        return service.run()

    def pay_all():
        barrier.wait()
        for loan_id in paid:
            billing.make_payment(loan_id=loan_id, amount=330_000, idempotency_key=f"p{loan_id}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = [pool.submit(sweep, s) for s in sweeps]
        pool.submit(pay_all).result()
        reports = [r.result() for r in reports]
    with engine.connect() as conn:
        status = dict(conn.execute(select(loans.c.id, loans.c.status)).all())
        counts = Counter(
            (r.loan_id, r.kind) for r in conn.execute(select(events.c.loan_id, events.c.kind)).all()
        )
    flips = sum(r.newly_delinquent for r in reports)
    assert flips == sum(counts[(i, "LOAN_DELINQUENT")] for i in ids)
    for loan_id in ids:
        if loan_id in paid:
            assert status[loan_id] == LoanStatus.ACTIVE.value
            assert counts[(loan_id, "LOAN_DELINQUENT")] == counts[(loan_id, "DELINQUENCY_CURED")]
        else:
            assert status[loan_id] == LoanStatus.DELINQUENT.value
            assert counts[(loan_id, "LOAN_DELINQUENT")] == 1
