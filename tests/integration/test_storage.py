"""The repository and the payment transaction on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text, update

from loanbilling.domain.errors import AlreadyExists, FailedPrecondition, PaymentAmountRefused
from loanbilling.domain.events import EventFilter, EventKind
from loanbilling.domain.loan import LoanStatus
from loanbilling.storage.database import autocommit, make_engine, transaction
from loanbilling.storage.event_store import events_after_query
from loanbilling.storage.migrate import (
    SchemaMismatch,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from loanbilling.storage.numbering import NUMBER_PENDING
from loanbilling.storage.tables import installments, loans, payments
from tests.conftest import START
from tests.support.api import lend_canonical

WEEK = dt.timedelta(days=7)


def canonical(billing, **overrides):
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    return lend_canonical(billing, customer.id, START, **overrides)


def test_schema_is_at_head_and_checked(engine):
    assert current_revision(engine) == head_revision()
    check_schema(engine)  # does not raise
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(SchemaMismatch, match="does not know"):
        check_schema(engine)


def test_empty_database_is_refused_then_migrated(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SchemaMismatch, match="loanbilling migrate"):
        check_schema(engine)
    upgrade(engine)
    upgrade(engine)  # idempotent
    check_schema(engine)
    engine.dispose()


def test_create_loan_stores_schedule(billing, engine):
    loan = canonical(billing)
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.count(), func.sum(installments.c.amount)).where(
                installments.c.loan_id == loan.id
            )
        ).one()
    assert tuple(rows) == (50, 5_500_000)


def test_concurrent_payments_settle_each_installment_once(billing, engine, clock):
    loan = canonical(billing)
    clock.current = START + 3 * WEEK  # weeks 1-2 overdue, week 3 current: 3 payable

    def attempt(n: int):
        try:
            return billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key=f"c{n}")
        except FailedPrecondition as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(32)))
    accepted = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, FailedPrecondition)]
    assert len(accepted) == 3
    assert len(refused) == 29
    assert sorted(w for o in accepted for w in o.payment.settled_week_numbers) == [1, 2, 3]
    with engine.connect() as conn:
        row = conn.execute(select(loans).where(loans.c.id == loan.id)).one()
        paid = conn.execute(
            select(func.count()).where(
                installments.c.loan_id == loan.id, installments.c.payment_id.is_not(None)
            )
        ).scalar_one()
        total_paid = conn.execute(
            select(func.sum(payments.c.amount)).where(payments.c.loan_id == loan.id)
        ).scalar_one()
    assert (row.paid_count, paid, total_paid) == (3, 3, 330_000)
    assert row.outstanding_amount == 5_500_000 - total_paid


def test_concurrent_retries_of_one_key_record_one_payment(billing, engine, clock):
    loan = canonical(billing)
    clock.current = START + WEEK

    def attempt(_):
        return billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="same")

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert len({o.payment for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(payments)).scalar_one()
    assert count == 1


def test_same_key_on_two_loans_concurrently(billing, clock):
    first, second = canonical(billing), canonical(billing)
    clock.current = START + WEEK

    def attempt(loan_id):
        try:
            return billing.make_payment(loan_id=loan_id, amount=110_000, idempotency_key="dup")
        except AlreadyExists as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, [first.id, second.id] * 4))
    winners = {o.payment.loan_id for o in outcomes if not isinstance(o, Exception)}
    assert len(winners) == 1
    assert sum(isinstance(o, AlreadyExists) for o in outcomes) == 4


def test_refused_payment_changes_nothing(billing, engine, clock):
    loan = canonical(billing)
    clock.current = START + WEEK

    def snapshot():
        with engine.connect() as conn:
            return (
                conn.execute(select(loans)).all(),
                conn.execute(select(installments)).all(),
                conn.execute(select(payments)).all(),
            )

    before = snapshot()
    with pytest.raises(PaymentAmountRefused):
        billing.make_payment(loan_id=loan.id, amount=109_999, idempotency_key="k")
    assert snapshot() == before


def test_past_reads_count_only_payments_dated_by_then(billing, clock):
    loan = canonical(billing)
    for week in range(1, 6):
        clock.current = START + week * WEEK
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key=f"w{week}")
    for week in range(0, 6):
        position = billing.get_position(loan.id, START + week * WEEK).position
        assert position.paid_count == week
        assert position.outstanding_amount == 5_500_000 - 110_000 * week


def test_stored_status_follows_payments(billing, engine, clock):
    loan = canonical(billing, weeks=3)
    clock.current = START + 3 * WEEK + dt.timedelta(days=1)
    late = canonical(billing, weeks=3)
    with engine.connect() as conn:
        status = conn.execute(select(loans.c.status).where(loans.c.id == late.id)).scalar_one()
    assert status == LoanStatus.DELINQUENT.value  # created already three weeks behind
    billing.make_payment(loan_id=late.id, amount=late.terms.total_amount, idempotency_key="all")
    billing.make_payment(loan_id=loan.id, amount=1_833_333, idempotency_key="one")
    with engine.connect() as conn:
        stored = dict(conn.execute(select(loans.c.id, loans.c.status)).all())
    assert stored == {loan.id: "DELINQUENT", late.id: "PAID"}


@contextmanager
def statements(engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_reads_cost_the_same_with_1_or_520_installments_paid(billing, engine, clock):
    short = canonical(billing, weeks=520, principal_amount=52_000_000)
    long = canonical(billing, weeks=520, principal_amount=52_000_000)
    clock.current = START + 520 * WEEK
    billing.make_payment(loan_id=short.id, amount=110_000, idempotency_key="one")
    billing.make_payment(loan_id=long.id, amount=long.terms.total_amount, idempotency_key="all")

    counts = []
    for loan_id, as_of in [(short.id, None), (long.id, None), (long.id, START)]:
        with statements(engine) as seen:
            billing.get_position(loan_id, as_of)
        counts.append(len([s for s in seen if s.lstrip().upper().startswith("SELECT")]))
    # The business date reads the loan row alone; a past date adds one index seek.
    assert counts == [1, 1, 2]


def test_hot_queries_are_served_by_indexes(engine, billing):
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    loan = canonical(billing)
    queries = [
        select(loans).where(loans.c.id == loan.id),
        select(payments.c.last_week)
        .where(payments.c.loan_id == loan.id, payments.c.payment_date <= START)
        .order_by(payments.c.payment_date.desc(), payments.c.last_week.desc())
        .limit(1),
        select(payments).where(payments.c.idempotency_key == "k"),
        update(installments)
        .where(installments.c.loan_id == loan.id, installments.c.week_number.between(1, 2))
        .values(paid_date=START),
        select(loans).where(loans.c.customer_id == 1).order_by(loans.c.id.desc()).limit(50),
    ]
    with engine.connect() as conn:
        # With sequential scans priced out, a plan without one proves an index serves it.
        conn.execute(text("SET enable_seqscan = off"))
        for query in queries:
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
            assert "Seq Scan" not in plan, plan
        conn.rollback()


def test_a_stream_of_one_loan_reads_that_loans_events_not_the_log(engine):
    """Catching up a stream filtered on a loan (or a customer) from the start of
    a long log: the plan looks the loan's events up by their index and joins
    their numbers, instead of walking every number in order."""
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    with engine.connect() as conn:
        _numbered_events(conn, 50_000)
        indexes = {
            EventFilter(kinds=frozenset(EventKind), loan_id=7): "uq_events_loan_id",
            EventFilter(kinds=frozenset(EventKind), customer_id=7): "ix_events_customer_id",
        }
        for only, index in indexes.items():
            query = events_after_query(0, limit=500, up_to=50_000, only=only)
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
            assert index in plan, plan
            assert "pk_event_numbers" not in plan, plan
        conn.rollback()


def _numbered_events(conn, count: int, pending: int = 0) -> None:
    """`count` events of 1,000 loans, without the loans they name, all numbered
    but the last `pending`."""
    conn.execute(text("SET session_replication_role = replica"))
    conn.execute(
        text(
            "INSERT INTO events (id, kind, loan_id, customer_id, week_number, business_date,"
            " created_at, amount, missed_installments, overdue_amount, days_past_due,"
            " outstanding_amount, currency_code)"
            " SELECT n, 'PAYMENT_RECEIVED', n % 1000 + 1, n % 250 + 1, n / 1000,"
            " '2026-01-05', now(), 110000, 0, 0, 0, 0, 'IDR'"
            " FROM generate_series(1, CAST(:count AS bigint)) AS n"
        ),
        {"count": count},
    )
    numbered = count - pending
    conn.execute(
        text(
            "INSERT INTO event_numbers SELECT n, n"
            " FROM generate_series(1, CAST(:numbered AS bigint)) AS n"
        ),
        {"numbered": numbered},
    )
    conn.execute(
        text("UPDATE event_sequence SET last_sequence = :numbered"), {"numbered": numbered}
    )
    conn.execute(
        text(
            "INSERT INTO pending_events SELECT n"
            " FROM generate_series(CAST(:first AS bigint), CAST(:count AS bigint)) AS n"
        ),
        {"first": numbered + 1, "count": count},
    )
    for table in ("events", "event_numbers", "pending_events"):
        conn.execute(text(f"ANALYZE {table}"))


def test_a_numbering_looks_its_few_events_up_instead_of_scanning_the_log(engine):
    """A numbering takes a handful of pending events (up to its limit, which the
    planner takes for the count): it must fetch each by its key, not hash-join a
    scan of the whole log, which cost 0.4 ms per numbering on a log of 1,000
    events and grows with it (docs/benchmarks.md, round five). The numbering
    runs inside a function: auto_explain shows the plans of its statements."""
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    with engine.connect() as conn:
        # The statistics saw a backlog of 500 (a sweep's, say): the planner
        # expects as many whenever it plans the statement again.
        _numbered_events(conn, 2_000, pending=500)
        plans: list[str] = []
        conn.connection.driver_connection.add_notice_handler(
            lambda notice: plans.append(notice.message_primary or "")
        )
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
        ):
            conn.exec_driver_sql(setting)
        numbered = conn.execute(NUMBER_PENDING, {"limit": 500, "channel": "c", "origin": "o"}).all()
        assert [row.sequence for row in numbered] == list(range(1_501, 2_001))
        plan = "\n".join(plans)
        assert "Delete on pending_events" in plan, plan  # the function's statement is shown
        assert "Seq Scan on events" not in plan, plan
        assert "Index Scan using pk_events on events" in plan, plan
        conn.rollback()


def test_a_connection_dead_at_return_does_not_cost_the_pool_its_slot(database_url):
    """A connection the driver knows is closed when it goes back to the pool must
    be replaced, not lost: with a pool of one, the next checkout would time out."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the autocommit connections are PostgreSQL's")
    engine = make_engine(database_url, pool_size=1, connect_timeout_s=1)
    try:
        for _ in range(3):
            with autocommit(engine) as conn:
                conn.exec_driver_sql("SELECT 1")
                conn.connection.driver_connection.close()  # as if the server went away
        with transaction(engine, write=False) as conn:
            assert conn.exec_driver_sql("SELECT 2").scalar_one() == 2
        with transaction(engine, write=True) as conn:
            assert conn.exec_driver_sql("SELECT 3").scalar_one() == 3
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()
