"""The delinquency sweep as set-based SQL over one bounded batch of unpaid loans.

Each statement mirrors a pure rule (see loanbilling.storage.sql) and runs on
every loan of the batch at once. The unique (loan, kind, week) constraint on
events makes the sweep idempotent: a second sweep for the same date, on this
replica or another, at the same time or later, writes nothing new.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from loanbilling.domain.events import EventKind
from loanbilling.domain.loan import DAYS_PER_WEEK, LoanStatus
from loanbilling.storage.sql import amount_through, date_param, days_between, weeks_due_before
from loanbilling.storage.tables import events, installments, loans

UNPAID = loans.c.status != LoanStatus.PAID.value


@dataclass(frozen=True, slots=True)
class BatchResult:
    last_loan_id: int | None  # None: no loans left after the batch start
    loans_checked: int
    newly_delinquent: int
    events_written: int


def _insert_ignoring_duplicates(conn: Connection, rows) -> int:
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING; returns the rows actually written."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    columns = [c.name for c in rows.selected_columns]
    statement = (
        dialect.insert(events)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["loan_id", "kind", "week_number"])
    )
    return conn.execute(statement).rowcount


def _event_columns(kind: EventKind, as_of: dt.date, now: dt.datetime, week, amount, due):
    """The event columns computed from a loan row at `as_of`, in SQL."""
    due_before = weeks_due_before(as_of)
    missed = case((due_before > loans.c.paid_count, due_before - loans.c.paid_count), else_=0)
    days_past_due = case(
        (
            missed > 0,
            days_between(date_param(as_of), loans.c.start_date)
            - DAYS_PER_WEEK * (loans.c.paid_count + 1),
        ),
        else_=0,
    )
    return [
        literal(kind.value).label("kind"),
        loans.c.id.label("loan_id"),
        loans.c.customer_id.label("customer_id"),
        week.label("week_number"),
        date_param(as_of).label("business_date"),
        literal(now).label("created_at"),
        amount.label("amount"),
        due.label("due_date"),
        missed.label("missed_installments"),
        (amount_through(loans.c.paid_count + missed) - amount_through(loans.c.paid_count)).label(
            "overdue_amount"
        ),
        days_past_due.label("days_past_due"),
        loans.c.outstanding_amount.label("outstanding_amount"),
        loans.c.currency_code.label("currency_code"),
    ]


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
    ids = (
        conn.execute(
            select(loans.c.id)
            .where(UNPAID, loans.c.id > after_loan_id)
            .order_by(loans.c.id)
            .limit(batch_size)
        )
        .scalars()
        .all()
    )
    if not ids:
        return BatchResult(None, 0, 0, 0)
    in_batch = and_(loans.c.id >= ids[0], loans.c.id <= ids[-1], UNPAID)
    due_before = weeks_due_before(as_of)
    written = 0

    # Installments missed: unpaid, due before as_of. The week range is bounded by
    # arithmetic, so the join is an index range scan per loan.
    missed_rows = (
        select(
            *_event_columns(
                EventKind.INSTALLMENT_MISSED,
                as_of,
                now,
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
                installments.c.week_number <= due_before,
            ),
        )
        .where(in_batch)
    )
    written += _insert_ignoring_duplicates(conn, missed_rows)

    # Payment due soon: unpaid installments due within [as_of, as_of + reminder_days].
    window_end = as_of + dt.timedelta(days=reminder_days)
    first_due_from = case((due_before > loans.c.paid_count, due_before), else_=loans.c.paid_count)
    due_soon_rows = (
        select(
            *_event_columns(
                EventKind.PAYMENT_DUE_SOON,
                as_of,
                now,
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
                installments.c.week_number > first_due_from,
                installments.c.week_number <= weeks_due_before(window_end + dt.timedelta(days=1)),
            ),
        )
        .where(in_batch)
    )
    written += _insert_ignoring_duplicates(conn, due_soon_rows)

    # ACTIVE -> DELINQUENT. The UPDATE's own WHERE decides, so a payment that
    # commits first (and cures) is seen; only the sweep that flips a loan reports it.
    flipped = (
        conn.execute(
            update(loans)
            .where(
                in_batch,
                loans.c.status == LoanStatus.ACTIVE.value,
                due_before - loans.c.paid_count >= loans.c.delinquency_threshold,
            )
            .values(status=LoanStatus.DELINQUENT.value, updated_at=now)
            .returning(loans.c.id)
        )
        .scalars()
        .all()
    )
    if flipped:
        oldest_overdue = loans.c.paid_count + 1
        delinquent_rows = select(
            *_event_columns(
                EventKind.LOAN_DELINQUENT,
                as_of,
                now,
                oldest_overdue,
                amount_through(due_before) - amount_through(loans.c.paid_count),
                select(installments.c.due_date)
                .where(
                    installments.c.loan_id == loans.c.id,
                    installments.c.week_number == oldest_overdue,
                )
                .scalar_subquery(),
            )
        ).where(loans.c.id.in_(flipped))
        written += _insert_ignoring_duplicates(conn, delinquent_rows)
    return BatchResult(ids[-1], len(ids), len(flipped), written)
