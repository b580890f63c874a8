"""The delinquency sweep as set-based SQL over one bounded batch of unpaid loans.

Each statement mirrors a pure rule (see loanbilling.storage.sql) and runs on
every loan of the batch at once. The unique (loan, kind, week) constraint on
events makes the sweep idempotent: a second sweep for the same date, on this
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
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from loanbilling.domain.events import EventKind
from loanbilling.domain.loan import DAYS_PER_WEEK, LoanStatus
from loanbilling.storage.database import autocommit, is_postgresql, transaction
from loanbilling.storage.sql import amount_through, days_between, weeks_due_before_expr
from loanbilling.storage.tables import Id, events, installments, loans

UNPAID = loans.c.status != LoanStatus.PAID.value

# The values a batch binds.
AS_OF = bindparam("as_of", type_=Date())
# The day after the reminder window: installments due before it are due soon.
WINDOW_AFTER = bindparam("window_after", type_=Date())
NOW = bindparam("now", type_=DateTime(timezone=True))
AFTER_LOAN_ID = bindparam("after_loan_id", type_=Id)
BATCH_SIZE = bindparam("batch_size", type_=Integer())
LAST_LOAN_ID = bindparam("last_loan_id", type_=Id)  # SQLite: the bound found first
FLIPPED_IDS = bindparam("flipped_ids", expanding=True, type_=Id)  # SQLite

EVENT_COLUMNS = [
    "kind",
    "loan_id",
    "customer_id",
    "week_number",
    "business_date",
    "created_at",
    "amount",
    "due_date",
    "missed_installments",
    "overdue_amount",
    "days_past_due",
    "outstanding_amount",
    "currency_code",
]


@dataclass(frozen=True, slots=True)
class BatchResult:
    last_loan_id: int | None  # None: no loans left after the batch start
    loans_checked: int
    newly_delinquent: int
    events_written: int


@contextmanager
def batch_connection(engine: Engine) -> Iterator[Connection]:
    """Where one batch runs: autocommit on PostgreSQL (the batch is one statement,
    hence one transaction), a write transaction on SQLite."""
    if is_postgresql(engine):
        with autocommit(engine) as conn:
            yield conn
        return
    with transaction(engine, write=True) as conn:
        yield conn


def _event_columns(kind, table, week, amount, due):
    """The event columns computed in SQL from a loan row (of `table`: loans, or the
    loans an UPDATE returned) at AS_OF."""
    due_before = weeks_due_before_expr(AS_OF, table)
    missed = case((due_before > table.c.paid_count, due_before - table.c.paid_count), else_=0)
    days_past_due = case(
        (
            missed > 0,
            days_between(AS_OF, table.c.start_date) - DAYS_PER_WEEK * (table.c.paid_count + 1),
        ),
        else_=0,
    )
    return [
        kind.label("kind"),
        table.c.id.label("loan_id"),
        table.c.customer_id.label("customer_id"),
        week.label("week_number"),
        AS_OF.label("business_date"),
        NOW.label("created_at"),
        amount.label("amount"),
        due.label("due_date"),
        missed.label("missed_installments"),
        (
            amount_through(table.c.paid_count + missed, table)
            - amount_through(table.c.paid_count, table)
        ).label("overdue_amount"),
        days_past_due.label("days_past_due"),
        table.c.outstanding_amount.label("outstanding_amount"),
        table.c.currency_code.label("currency_code"),
    ]


def _schedule_rows(in_batch):
    """ "Installment missed" (unpaid, due before AS_OF) and "payment due soon" (unpaid,
    due from AS_OF to the end of the reminder window) events of the batch's loans.

    The two week ranges are adjacent, (paid_count, due_before] and (due_before,
    due_soon_before], so one join covers both, each loan's rows in week order. The
    range is bounded by arithmetic, so the join is an index range scan per loan,
    and a loan with nothing unpaid in it (most of a batch) is not joined at all.
    """
    due_before = weeks_due_before_expr(AS_OF)
    due_soon_before = weeks_due_before_expr(WINDOW_AFTER)
    kind = case(
        (installments.c.week_number <= due_before, literal(EventKind.INSTALLMENT_MISSED.value)),
        else_=literal(EventKind.PAYMENT_DUE_SOON.value),
    )
    return (
        select(
            *_event_columns(
                kind,
                loans,
                installments.c.week_number,
                installments.c.amount,
                installments.c.due_date,
            )
        )
        .select_from(loans)
        .join(
            installments,
            and_(
                installments.c.loan_id == loans.c.id,
                installments.c.week_number > loans.c.paid_count,
                installments.c.week_number <= due_soon_before,
            ),
        )
        .where(in_batch, due_soon_before > loans.c.paid_count)
    )


def _flip(in_batch):
    """ACTIVE -> DELINQUENT. The UPDATE's own WHERE decides, so a payment that
    commits first (and cures) is seen; only the sweep that flips a loan reports it."""
    return (
        update(loans)
        .where(
            in_batch,
            loans.c.status == LoanStatus.ACTIVE.value,
            weeks_due_before_expr(AS_OF) - loans.c.paid_count >= loans.c.delinquency_threshold,
        )
        .values(status=LoanStatus.DELINQUENT.value, updated_at=NOW)
    )


def _delinquent_rows(table):
    """ "Loan delinquent" events of the loans in `table` (just flipped)."""
    oldest_overdue = table.c.paid_count + 1
    return select(
        *_event_columns(
            literal(EventKind.LOAN_DELINQUENT.value),
            table,
            oldest_overdue,
            amount_through(weeks_due_before_expr(AS_OF, table), table)
            - amount_through(table.c.paid_count, table),
            select(installments.c.due_date)
            .where(
                installments.c.loan_id == table.c.id,
                installments.c.week_number == oldest_overdue,
            )
            .scalar_subquery(),
        )
    )


def _insert_ignoring_duplicates(dialect, rows):
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING on the (loan, kind, week) key."""
    return (
        dialect.insert(events)
        .from_select(EVENT_COLUMNS, rows)
        .on_conflict_do_nothing(index_elements=["loan_id", "kind", "week_number"])
    )


def _batch_ids():
    return (
        select(loans.c.id)
        .where(UNPAID, loans.c.id > AFTER_LOAN_ID)
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
        UNPAID,
    )
    flipped = (
        _flip(in_batch)
        .returning(
            loans.c.id,
            loans.c.customer_id,
            loans.c.start_date,
            loans.c.weeks,
            loans.c.paid_count,
            loans.c.total_amount,
            loans.c.weekly_payment,
            loans.c.outstanding_amount,
            loans.c.currency_code,
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
    # The counts are evaluated in this order: `written` first, so that the INSERT,
    # not the count of `flipped`, is what runs the UPDATE.
    return select(
        bounds.c.last_loan_id,
        bounds.c.loans_checked,
        select(func.count()).select_from(written).scalar_subquery().label("events_written"),
        select(func.count()).select_from(flipped).scalar_subquery().label("newly_delinquent"),
    )


@functools.cache
def _sqlite_statements():
    ids = _batch_ids()
    bounds = select(func.max(ids.c.id), func.count())
    in_batch = and_(loans.c.id > AFTER_LOAN_ID, loans.c.id <= LAST_LOAN_ID, UNPAID)
    return (
        bounds,
        _insert_ignoring_duplicates(sqlite, _schedule_rows(in_batch)),
        _flip(in_batch).returning(loans.c.id),
        _insert_ignoring_duplicates(
            sqlite, _delinquent_rows(loans).where(loans.c.id.in_(FLIPPED_IDS))
        ),
    )


def sweep_batch(
    conn: Connection,
    *,
    as_of: dt.date,
    after_loan_id: int,
    batch_size: int,
    reminder_days: int,
    now: dt.datetime,
) -> BatchResult:
    """Sweeps the next `batch_size` unpaid loans with an id above `after_loan_id`."""
    params = {
        "as_of": as_of,
        "window_after": as_of + dt.timedelta(days=reminder_days + 1),
        "now": now,
        "after_loan_id": after_loan_id,
        "batch_size": batch_size,
    }
    if conn.dialect.name == "postgresql":
        last, checked, written, flipped = conn.execute(_postgresql_batch(), params).one()
        if last is None:
            return BatchResult(None, 0, 0, 0)
        return BatchResult(last, checked, flipped, written)

    bounds, schedule, flip, delinquent = _sqlite_statements()
    last, checked = conn.execute(bounds, params).one()
    if last is None:
        return BatchResult(None, 0, 0, 0)
    params["last_loan_id"] = last
    written = conn.execute(schedule, params).rowcount
    flipped = conn.execute(flip, params).scalars().all()
    if flipped:
        written += conn.execute(delinquent, {**params, "flipped_ids": flipped}).rowcount
    return BatchResult(last, checked, len(flipped), written)
