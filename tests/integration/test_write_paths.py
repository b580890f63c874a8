"""Payments and new loans as written on each database.

PostgreSQL writes a payment as one guarded statement after an unlocked read,
and a new loan as one statement (loanbilling.storage.one_statement); SQLite,
and PostgreSQL when asked ("postgresql-portable"), take the portable locking
transaction. Both must store, answer and report the same things; on
PostgreSQL a race between the read and the write must fall back to the lock,
not lose or double a payment.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from loanbilling.clock import FixedClock
from loanbilling.domain.errors import NotFound
from loanbilling.domain.loan import LoanStatus
from loanbilling.services.billing import BillingService
from loanbilling.storage.tables import events, installments, loans, payments
from loanbilling.storage.unit_of_work import sql_storage
from tests.conftest import START
from tests.integration.test_storage import WEEK, canonical, statements
from tests.support.api import new_key


def require_one_statement(billing) -> None:
    if not billing.storage.one_statement:
        pytest.skip("the one-statement writes are PostgreSQL's; this storage writes portably")


def _rows(engine, table, *where):
    with engine.connect() as conn:
        return conn.execute(select(table).where(*where).order_by(*table.primary_key)).all()


def test_created_loan_answer_is_what_was_stored(billing, engine):
    # 1,000,001 + 10 % (100,000.1 -> 100,000) over 7 weeks: the last week takes the remainder.
    created = canonical(billing, principal_amount=1_000_001, weeks=7, interest_rate_bps=1000)
    answer = billing.create_loan(
        customer_id=created.customer_id,
        principal_amount=1_000_001,
        interest_rate_bps=1000,
        weeks=7,
        start_date=START,
        request_id="answer-check",
    )
    stored = billing.get_loan(answer.loan.id, as_of=START)
    assert answer.loan == stored.loan
    assert answer.position == stored.position
    assert answer.schedule == stored.schedule
    amounts = [line.installment.amount for line in stored.schedule]
    assert amounts == [157_143] * 6 + [1_100_001 - 6 * 157_143]
    assert [line.installment.due_date for line in stored.schedule] == [
        START + k * WEEK for k in range(1, 8)
    ]
    interest = [line.installment.interest_amount for line in stored.schedule]
    assert sum(interest) == 100_000
    assert all(
        line.installment.principal_amount + line.installment.interest_amount
        == line.installment.amount
        for line in stored.schedule
    )


def test_loan_for_unknown_customer_writes_nothing(billing, engine):
    with pytest.raises(NotFound, match="customer 4242"):
        billing.create_loan(
            customer_id=4242,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            request_id=new_key("loan"),
        )
    assert _rows(engine, loans) == []
    assert _rows(engine, installments) == []
    assert _rows(engine, events) == []


def test_back_dated_loan_writes_created_and_delinquent_events(billing, engine, clock):
    clock.current = START + 3 * WEEK + dt.timedelta(days=1)  # weeks 1-3 missed
    loan = canonical(billing)
    assert loan.status is LoanStatus.DELINQUENT
    written = _rows(engine, events, events.c.loan_id == loan.id)
    assert [(e.kind, e.week_number, e.payment_id) for e in written] == [
        ("LOAN_CREATED", 0, None),
        ("LOAN_DELINQUENT", 1, None),
    ]
    assert written[1].missed_installments == 3
    assert written[1].due_date == START + WEEK


def test_payment_events_carry_the_payment_they_report(billing, engine, clock):
    loan = canonical(billing)
    clock.current = START + 3 * WEEK + dt.timedelta(days=1)
    # Stored ACTIVE, three weeks behind: the payment of one week leaves it
    # delinquent and reports that transition itself (no payment on it).
    first = billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="one")
    cure = billing.make_payment(loan_id=loan.id, amount=220_000, idempotency_key="two")
    written = _rows(engine, events, events.c.loan_id == loan.id)
    assert [(e.kind, e.week_number, e.payment_id) for e in written] == [
        ("LOAN_CREATED", 0, None),
        ("PAYMENT_RECEIVED", 1, first.payment.id),
        ("LOAN_DELINQUENT", 2, None),
        ("PAYMENT_RECEIVED", 3, cure.payment.id),
        ("DELINQUENCY_CURED", 3, cure.payment.id),
    ]
    settled = _rows(engine, installments, installments.c.loan_id == loan.id)
    assert [(i.week_number, i.payment_id, i.paid_date) for i in settled[:4]] == [
        (1, first.payment.id, clock.current),
        (2, cure.payment.id, clock.current),
        (3, cure.payment.id, clock.current),
        (4, None, None),
    ]


def test_postgresql_pays_in_three_statements_and_creates_in_two(billing, engine):
    require_one_statement(billing)
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    with statements(engine) as seen:
        loan = billing.create_loan(
            customer_id=customer.id,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            request_id=new_key("loan"),
        ).loan
    # The loan's id is drawn first, so that its events name it; then one statement.
    assert len(seen) == 2, seen
    assert "nextval" in seen[0] and seen[1].lstrip().startswith("WITH created AS")
    with statements(engine) as seen:
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="k1")
    # The unlocked read (loan and key), the accepted payment's id, then the
    # guarded write: no BEGIN, no COMMIT.
    assert len(seen) == 3, seen
    assert "nextval" in seen[1] and seen[2].lstrip().startswith("WITH moved AS")


def test_a_payment_racing_another_falls_back_to_the_lock(billing, engine, clock):
    """Between a payment's read and its write, another payment lands on the loan:
    the guarded write must write nothing, and the locking path then settle the
    next installment, not the one the other payment took."""
    require_one_statement(billing)  # the portable path reads under the lock
    loan = canonical(billing)
    clock.current = START + 2 * WEEK
    rival = BillingService(sql_storage(engine), FixedClock(clock.current))
    raced = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("WITH moved AS") and not raced:
            raced.append(None)  # first: the rival's own write passes through here too
            raced[0] = rival.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="r")

    event.listen(engine, "before_cursor_execute", before)
    try:
        with statements(engine) as seen:
            mine = billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="m")
    finally:
        event.remove(engine, "before_cursor_execute", before)
    # Mine unlocked (wrote nothing), the rival's, then mine again after the row lock.
    writes = [i for i, s in enumerate(seen) if s.lstrip().startswith("WITH moved AS")]
    locked = [i for i, s in enumerate(seen) if "FOR UPDATE" in s]
    assert len(writes) == 3 and len(locked) == 1
    assert writes[1] < locked[0] < writes[2]
    assert raced[0].payment.settled_week_numbers == [1]
    assert mine.payment.settled_week_numbers == [2]
    assert mine.payment.outstanding_after == 5_500_000 - 220_000
    stored = _rows(engine, payments, payments.c.loan_id == loan.id)
    assert [(p.idempotency_key, p.first_week, p.last_week) for p in stored] == [
        ("r", 1, 1),
        ("m", 2, 2),
    ]
    (row,) = _rows(engine, loans, loans.c.id == loan.id)
    assert (row.paid_count, row.outstanding_amount) == (2, 5_500_000 - 220_000)


def test_a_sweep_between_read_and_write_falls_back_to_the_lock(billing, engine, clock):
    """A status changed by the sweep (not the paid count) also voids the guarded write."""
    require_one_statement(billing)  # the portable path reads under the lock
    loan = canonical(billing)
    clock.current = START + 3 * WEEK + dt.timedelta(days=1)
    flipped = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("WITH moved AS") and not flipped:
            with engine.begin() as other:
                other.execute(
                    loans.update().where(loans.c.id == loan.id).values(status="DELINQUENT")
                )
            flipped.append(True)

    event.listen(engine, "before_cursor_execute", before)
    try:
        paid = billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="m")
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert flipped
    assert paid.payment.settled_week_numbers == [1]
    # Decided again from DELINQUENT: still delinquent, so no transition to report.
    kinds = [e.kind for e in _rows(engine, events, events.c.loan_id == loan.id)]
    assert kinds == ["LOAN_CREATED", "PAYMENT_RECEIVED"]


def test_a_payment_and_its_reversal_between_read_and_write_fall_back_to_the_lock(
    billing, engine, clock
):
    """Between a payment's read and its write, another payment settles week 2 and
    is reversed: paid amount and status are back to what was read, but the history
    moved to a new version. The guarded write must write nothing (its events would
    repeat the reversed payment's keys in the old version), and the locking path
    settle week 2 again in the new version."""
    require_one_statement(billing)  # the portable path reads under the lock
    loan = canonical(billing)
    clock.current = START + 2 * WEEK
    billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="p1")
    rival = BillingService(sql_storage(engine), FixedClock(clock.current))
    raced = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("WITH moved AS") and not raced:
            raced.append(None)
            paid = rival.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="p2")
            raced[0] = rival.reverse_payment(
                payment_id=paid.payment.id, reason="bounced", idempotency_key="r2"
            )

    event.listen(engine, "before_cursor_execute", before)
    try:
        mine = billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="m")
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert raced[0].payment.reversal is not None
    assert mine.payment.settled_week_numbers == [2]
    (row,) = _rows(engine, loans, loans.c.id == loan.id)
    assert (row.paid_amount, row.paid_count, row.history_version) == (220_000, 2, 1)
    received = [
        (e.week_number, e.history_version, e.payment_id)
        for e in _rows(engine, events, events.c.loan_id == loan.id)
        if e.kind == "PAYMENT_RECEIVED"
    ]
    assert received == [(1, 0, 1), (2, 0, raced[0].payment.id), (2, 1, mine.payment.id)]
