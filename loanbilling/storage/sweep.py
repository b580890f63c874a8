"""The delinquency sweep as set-based SQL over one bounded batch of unpaid loans.

What a sweep writes for a loan is loanbilling.domain.sweep.sweep_loan; the
statements here apply it to every loan of a batch at once, built from its SQL
twins in loanbilling.storage.sql. The unique (loan, kind, week, history
version) constraint on events makes the sweep idempotent: a second sweep for the same date, on this
replica or another, at the same time or later, writes nothing new.

The statements are built once per dialect, with bind parameters for the dates,
the batch bounds and the time written: a batch only binds values and runs
them. On PostgreSQL a whole batch is one statement (data-modifying CTEs), run
in autocommit: one round trip and one transaction per batch. SQLite has no
data-modifying CTEs: there a batch is four short statements in one transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from loanbilling.domain.events import EventKind
from loanbilling.domain.loan import LoanStatus
from loanbilling.domain.sweep import reminder_window_end
from loanbilling.storage.database import autocommit, is_postgresql, transaction
from loanbilling.storage.event_store import EVENT_COLUMNS, queue_events
from loanbilling.storage.interfaces import SweepBatch
from loanbilling.storage.sql import (
    PositionSql,
    event_columns,
    flips_to_delinquent,
    is_swept,
    oldest_overdue_week,
    schedule_event_kind,
    schedule_event_weeks,
)
from loanbilling.storage.tables import Id, events, installments, loans, pending_events

# The values a batch binds.
AS_OF = bindparam("as_of", type_=Date())
WINDOW_END = bindparam("window_end", type_=Date())  # domain.sweep.reminder_window_end
NOW = bindparam("now", type_=DateTime(timezone=True))
AFTER_LOAN_ID = bindparam("after_loan_id", type_=Id)
BATCH_SIZE = bindparam("batch_size", type_=Integer())
LAST_LOAN_ID = bindparam("last_loan_id", type_=Id)  # SQLite: the bound found first
FLIPPED_IDS = bindparam("flipped_ids", expanding=True, type_=Id)  # SQLite


@contextmanager
def _batch_connection(engine: Engine) -> Iterator[Connection]:
    """Where one batch runs: autocommit on PostgreSQL (the batch is one statement,
    hence one transaction), a write transaction on SQLite."""
    if is_postgresql(engine):
        with autocommit(engine) as conn:
            yield conn
        return
    with transaction(engine, write=True) as conn:
        yield conn


def _schedule_rows(in_batch):
    """The schedule events ("installment missed", "payment due soon") of the batch's loans.

    The range of weeks is bounded by arithmetic, so the join is an index range
    scan per loan, and a loan with nothing unpaid in it (most of a batch) is not
    joined at all; each loan's rows come in week order.

    Each loan is judged on its stored state (domain.sweep.sweep_position): its
    paid_amount for the amounts, its paid_count for c(A) (the materialised
    storage.sql.installments_covered(paid_amount)) for the counts and weeks.
    """
    position = PositionSql.of_row(loans, AS_OF)
    weeks = schedule_event_weeks(position, WINDOW_END)
    return (
        select(
            *event_columns(
                schedule_event_kind(installments.c.due_date, AS_OF),
                loans,
                position,
                week_number=installments.c.week_number,
                amount=installments.c.amount,
                due_date=installments.c.due_date,
                business_date=AS_OF,
                created_at=NOW,
            )
        )
        .select_from(loans)
        .join(
            installments,
            and_(installments.c.loan_id == loans.c.id, weeks.holds(installments.c.week_number)),
        )
        .where(in_batch, weeks.any())
    )


def _flip(in_batch):
    """ACTIVE -> DELINQUENT. The UPDATE's own WHERE decides, so a payment that
    commits first (and cures) is seen; only the sweep that flips a loan reports it."""
    return (
        update(loans)
        .where(in_batch, flips_to_delinquent(PositionSql.of_row(loans, AS_OF)))
        .values(status=LoanStatus.DELINQUENT.value, updated_at=NOW)
    )


def _delinquent_rows(table):
    """ "Loan delinquent" events of the loans in `table` (just flipped)."""
    position = PositionSql.of_row(table, AS_OF)
    oldest = oldest_overdue_week(position)
    return select(
        *event_columns(
            literal(EventKind.LOAN_DELINQUENT.value),
            table,
            position,
            week_number=oldest,
            amount=position.overdue_amount,
            due_date=select(installments.c.due_date)
            .where(installments.c.loan_id == table.c.id, installments.c.week_number == oldest)
            .scalar_subquery(),
            business_date=AS_OF,
            created_at=NOW,
        )
    )


def _insert_ignoring_duplicates(dialect, rows):
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING on the (loan, kind, week,
    history version) key."""
    return (
        dialect.insert(events)
        .from_select(list(EVENT_COLUMNS), rows)
        .on_conflict_do_nothing(
            index_elements=["loan_id", "kind", "week_number", "history_version"]
        )
    )


def _batch_ids():
    return (
        select(loans.c.id)
        .where(is_swept(), loans.c.id > AFTER_LOAN_ID)
        .order_by(loans.c.id)
        .limit(BATCH_SIZE)
        .subquery("batch_ids")
    )


@functools.cache
def _postgresql_batch():
    """One statement: the batch's bounds, its schedule events, the flips and their
    events. Returns one row (last_loan_id, loans_checked, events_written,
    newly_delinquent); last_loan_id is NULL when no loans are left.

    The events are one INSERT whose rows are the schedule events, then those of
    the flipped loans: a plan's Append reads its inputs in order, so a loan's
    "loan delinquent" event gets a higher id, hence a later sequence, than its
    "installment missed" ones, as when they were separate statements. The
    UPDATE's CTE runs when the INSERT reaches its rows, after the schedule
    events are in, again as before.
    """
    ids = _batch_ids()
    bounds = select(
        func.max(ids.c.id).label("last_loan_id"), func.count().label("loans_checked")
    ).cte("bounds")
    in_batch = and_(
        loans.c.id > AFTER_LOAN_ID,
        loans.c.id <= select(bounds.c.last_loan_id).scalar_subquery(),
        is_swept(),
    )
    flipped = (
        _flip(in_batch)
        .returning(
            loans.c.id,
            loans.c.customer_id,
            loans.c.start_date,
            loans.c.weeks,
            loans.c.paid_amount,
            loans.c.paid_count,  # c(paid_amount): see PositionSql.of_row
            loans.c.total_amount,
            loans.c.weekly_payment,
            loans.c.currency_code,
            loans.c.history_version,
            loans.c.write_off_date,
        )
        .cte("flipped")
    )
    written = (
        _insert_ignoring_duplicates(
            postgresql, union_all(_schedule_rows(in_batch), _delinquent_rows(flipped))
        )
        .returning(events.c.id)
        .cte("written")
    )
    queued = (
        insert(pending_events)
        .from_select(["event_id"], select(written.c.id))
        .returning(pending_events.c.event_id)
        .cte("queued")
    )
    # The counts are evaluated in this order: the events' first, so that the
    # INSERT, not the count of `flipped`, is what runs the UPDATE.
    return select(
        bounds.c.last_loan_id,
        bounds.c.loans_checked,
        select(func.count()).select_from(queued).scalar_subquery().label("events_written"),
        select(func.count()).select_from(flipped).scalar_subquery().label("newly_delinquent"),
    )


@functools.cache
def _sqlite_statements():
    ids = _batch_ids()
    bounds = select(func.max(ids.c.id), func.count())
    in_batch = and_(loans.c.id > AFTER_LOAN_ID, loans.c.id <= LAST_LOAN_ID, is_swept())
    return (
        bounds,
        _insert_ignoring_duplicates(sqlite, _schedule_rows(in_batch)).returning(events.c.id),
        _flip(in_batch).returning(loans.c.id),
        _insert_ignoring_duplicates(
            sqlite, _delinquent_rows(loans).where(loans.c.id.in_(FLIPPED_IDS))
        ).returning(events.c.id),
    )


def _run_batch(conn: Connection, params: dict) -> SweepBatch:
    if conn.dialect.name == "postgresql":
        last, checked, written, flipped = conn.execute(_postgresql_batch(), params).one()
        if last is None:
            return SweepBatch(None, 0, 0, 0)
        return SweepBatch(last, checked, flipped, written)

    bounds, schedule, flip, delinquent = _sqlite_statements()
    last, checked = conn.execute(bounds, params).one()
    if last is None:
        return SweepBatch(None, 0, 0, 0)
    params["last_loan_id"] = last
    written = conn.execute(schedule, params).scalars().all()
    flipped = conn.execute(flip, params).scalars().all()
    if flipped:
        written += conn.execute(delinquent, {**params, "flipped_ids": flipped}).scalars().all()
    queue_events(conn, written)
    return SweepBatch(last, checked, len(flipped), len(written))


def sweep_batch(
    engine: Engine,
    *,
    as_of: dt.date,
    after_loan_id: int,
    batch_size: int,
    reminder_days: int,
) -> SweepBatch:
    """Sweeps the next `batch_size` unpaid loans with an id above `after_loan_id`,
    in one short transaction of its own."""
    params = {
        "as_of": as_of,
        "window_end": reminder_window_end(as_of, reminder_days),
        "now": dt.datetime.now(dt.UTC),
        "after_loan_id": after_loan_id,
        "batch_size": batch_size,
    }
    with _batch_connection(engine) as conn:
        return _run_batch(conn, params)
