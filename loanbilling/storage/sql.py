"""Portable SQL for the schedule arithmetic that set-based queries need.

The same expressions compile for PostgreSQL and SQLite, and mirror the pure
rules in loanbilling.domain.loan (weeks_due_before, amount_through, ...), so
that sweeps and portfolio aggregates run in the database without loading loans.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, bindparam, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from loanbilling.domain.loan import DAYS_PER_WEEK
from loanbilling.storage.tables import loans, payments


class days_between(FunctionElement):  # noqa: N801 - reads as the SQL function it is
    """later - earlier, in whole days, for two DATE expressions."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between, "postgresql")
def _days_between_pg(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return (
        f"CAST(julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)}) AS INTEGER)"
    )


def date_param(value: dt.date) -> ColumnElement:
    return bindparam(None, value, type_=Date(), unique=True)


def _clamp(value, low, high) -> ColumnElement:
    # max/min of two values: greatest/least in PostgreSQL, scalar max/min in SQLite.
    return case((value < low, low), (value > high, high), else_=value)


def weeks_due_before(on: dt.date, table=loans) -> ColumnElement:
    """Installments due strictly before `on` (domain: LoanTerms.weeks_due_before)."""
    return weeks_due_before_expr(date_param(on), table)


def weeks_due_before_expr(on: ColumnElement, table=loans) -> ColumnElement:
    """weeks_due_before for a DATE expression, e.g. a named bindparam of a statement
    built once."""
    days = days_between(on, table.c.start_date)
    # Integer division truncates toward zero in both databases; the clamp at 0
    # makes that equal to the floor the domain uses.
    return _clamp((days - 1) // DAYS_PER_WEEK, literal(0), table.c.weeks)


def amount_through(week_number, table=loans) -> ColumnElement:
    """Sum of installments 1..week_number (domain: LoanTerms.amount_through)."""
    return case(
        (week_number >= table.c.weeks, table.c.total_amount),
        (week_number <= 0, literal(0)),
        else_=table.c.weekly_payment * week_number,
    )


def paid_count_at(on: dt.date, table=loans) -> ColumnElement:
    """Installments paid by the end of `on`: the loan row unless `on` is before its
    latest payment, then one index seek into payments."""
    past = (
        select(payments.c.last_week)
        .where(payments.c.loan_id == table.c.id, payments.c.payment_date <= date_param(on))
        .order_by(payments.c.payment_date.desc(), payments.c.last_week.desc())
        .limit(1)
        .scalar_subquery()
    )
    return case(
        (
            (table.c.last_payment_date.is_(None)) | (table.c.last_payment_date <= date_param(on)),
            table.c.paid_count,
        ),
        else_=func.coalesce(past, 0),
    )
