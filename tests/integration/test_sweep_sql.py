"""The sweep's set-based SQL against its domain rule, on SQLite and PostgreSQL.

The oracle is loanbilling.domain.sweep.sweep_loan, called on each loan as
storage holds it before the sweep (its paid amount being the one the book
wrote, on an installment boundary or not): generated books swept twice, in
batches of several sizes, must hold exactly the events (and stored statuses)
it gives, each written once.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from loanbilling.domain.events import NewEvent
from loanbilling.domain.loan import LoanStatus
from loanbilling.domain.sweep import is_swept, sweep_loan
from loanbilling.services.billing import BillingService
from loanbilling.services.sweep import SweepService
from loanbilling.storage.event_store import EVENT_COLUMNS, event_row
from loanbilling.storage.tables import events, loans
from tests.conftest import START
from tests.support.api import lend_canonical
from tests.support.generated_loans import (
    BOOKS,
    DATES,
    DAY,
    PROPERTY_SETTINGS,
    WORKED_BOOK,
    empty_database,
    write_book,
)

# Every column a writer fills but the time it wrote.
FIELDS = tuple(name for name in EVENT_COLUMNS if name != "created_at")
SWEEP_KINDS = ("INSTALLMENT_MISSED", "PAYMENT_DUE_SOON", "LOAN_DELINQUENT")


@pytest.fixture
def books(storage, clock):
    """The service on the database's own write path: the sweep reads what any writes."""
    return BillingService(storage, clock)


def stored_events(conn) -> list[tuple]:
    return sorted(conn.execute(select(*(events.c[f] for f in FIELDS))).all())


def as_row(event: NewEvent) -> tuple:
    row = event_row(event, now=None)
    return tuple(row[f] for f in FIELDS)


def key(row: tuple) -> tuple:
    values = dict(zip(FIELDS, row, strict=True))
    return (values["loan_id"], values["kind"], values["week_number"])


SWEEPS = st.tuples(DATES, st.integers(-7, 30), st.integers(0, 7), st.sampled_from([1, 2, 1000]))


@PROPERTY_SETTINGS
@given(plans=BOOKS, sweeps=SWEEPS, second_reminder_days=st.integers(0, 7))
# The worked book swept on day 25: its first loan, one unit short of paid off, has
# week 3 missed (1 overdue) and turns delinquent; then on day 50 its second, partly
# covered (605,000), has weeks 6-7 missed (165,000 overdue) and turns delinquent.
@example(plans=WORKED_BOOK, sweeps=(START + 25 * DAY, 25, 0, 1), second_reminder_days=7)
def test_sweeps_write_what_the_domain_gives(
    engine, storage, books, clock, plans, sweeps, second_reminder_days
):
    empty_database(engine)
    wrote = write_book(engine, books, clock, plans)
    ids = [w.id for w in wrote]
    first, later_by, reminder_days, batch_size = sweeps
    # The second sweep meets the first one's events and flips (it may be of an earlier date).
    for as_of, days in ((first, reminder_days), (first + later_by * DAY, second_reminder_days)):
        clock.current = START + 400 * DAY  # any sweep date is in the past
        with storage.reading() as uow:
            book = [uow.loans.get(loan_id) for loan_id in ids]
        # The oracle judges the paid amount the book wrote.
        assert [loan.paid_amount for loan in book] == [w.paid_amount for w in wrote]
        with engine.connect() as conn:
            before = stored_events(conn)
        outcomes = {loan.id: sweep_loan(loan, as_of, days) for loan in book}
        written = {key(row) for row in before}
        new = [
            as_row(event)
            for outcome in outcomes.values()
            for event in outcome.events
            if key(as_row(event)) not in written
        ]

        report = SweepService(storage, clock, batch_size=batch_size, reminder_days=days).run(as_of)

        flipped = {loan_id for loan_id, outcome in outcomes.items() if outcome.flips_to_delinquent}
        assert report.loans_checked == sum(is_swept(loan.status) for loan in book)
        assert (report.events_written, report.newly_delinquent) == (len(new), len(flipped))
        with engine.connect() as conn:
            assert stored_events(conn) == sorted(before + new)
            statuses = dict(conn.execute(select(loans.c.id, loans.c.status)).all())
        assert statuses == {
            loan.id: (LoanStatus.DELINQUENT if loan.id in flipped else loan.status).value
            for loan in book
        }


def test_a_loans_delinquent_event_follows_its_missed_installments(engine, books, storage, clock):
    """Subscribers read events in sequence (id) order: within a loan, the sweep's
    "loan delinquent" comes after the "installment missed" events that caused it."""
    customer = books.create_customer(name="Siti", email="siti@example.com", phone="").id
    for _ in range(5):
        lend_canonical(books, customer, START)
    clock.current = START + 22 * DAY  # weeks 1-3 missed, week 4 due on day 28
    report = SweepService(storage, clock, reminder_days=6).run()
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


def test_sweeps_racing_payments_flip_and_cure_consistently(engine, billing, storage, clock):
    """Two sweeps and catch-up payments on the same loans at once: nothing fails, a
    loan paid up ends ACTIVE (cured if a sweep flipped it first), an unpaid one
    ends DELINQUENT with one "loan delinquent" event."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    ids = [lend_canonical(billing, customer, START).id for _ in range(24)]
    clock.current = START + 22 * DAY  # weeks 1-3 missed: delinquent
    paid = ids[::2]
    sweeps = [SweepService(storage, clock, batch_size=5) for _ in range(2)]
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
