"""Portfolio figures at a date, aggregated by the database in one statement.

Each loan's position mirrors loanbilling.domain.loan.Position through the
portable expressions in storage.sql; no loan row is loaded into Python, and one
statement sees one consistent snapshot on both databases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, literal, select
from sqlalchemy.sql.expression import ColumnElement

from loanbilling.domain.loan import BPS_DENOMINATOR, DAYS_PER_WEEK
from loanbilling.storage.sql import (
    amount_through,
    date_param,
    days_between,
    paid_count_at,
    weeks_due_before,
)
from loanbilling.storage.tables import loans

# Portfolio-at-risk buckets by days past due, bounds inclusive; None: no upper bound.
PAR_BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 6), (7, 13), (14, 29), (30, None))


@dataclass(frozen=True, slots=True)
class StatusFigures:
    loan_count: int
    principal_amount: int
    outstanding_amount: int


@dataclass(frozen=True, slots=True)
class RiskBucketFigures:
    min_days_past_due: int
    max_days_past_due: int | None
    loan_count: int
    outstanding_amount: int


@dataclass(frozen=True, slots=True)
class PortfolioFigures:
    loan_count: int
    active: StatusFigures
    delinquent: StatusFigures
    paid: StatusFigures
    principal_disbursed: int
    total_repayable: int
    collected_amount: int
    outstanding_amount: int
    overdue_amount: int
    due_amount: int
    # Of due_amount, what has been paid: paying ahead of the schedule is not counted.
    collected_toward_due: int
    portfolio_at_risk: tuple[RiskBucketFigures, ...]
    delinquency_rate_bps: int
    collection_rate_bps: int


def _positions(as_of: dt.date, currency_code: str):
    """One row per loan counted: its terms and its schedule counters at the end of as_of."""
    age = days_between(date_param(as_of), loans.c.start_date)
    # age >= 0 for the loans counted, so the truncating integer division is the floor.
    due_through = case(
        (age // DAYS_PER_WEEK > loans.c.weeks, loans.c.weeks), else_=age // DAYS_PER_WEEK
    )
    return (
        select(
            loans.c.principal_amount,
            loans.c.total_amount,
            loans.c.weekly_payment,
            loans.c.weeks,
            loans.c.delinquency_threshold,
            paid_count_at(as_of).label("paid"),
            weeks_due_before(as_of).label("due_before"),
            due_through.label("due_through"),
            age.label("age_days"),
        )
        .where(loans.c.currency_code == currency_code, loans.c.start_date <= date_param(as_of))
        # Without MATERIALIZED both databases inline the CTE and would run
        # paid_count_at's payments subquery once per reference instead of once per loan.
        .cte("positions")
        .prefix_with("MATERIALIZED")
    )


def _total(value, where=None) -> ColumnElement:
    """sum(value) over the loans matching `where`; 0 rather than NULL over no rows."""
    if where is not None:
        value = case((where, value), else_=literal(0))
    return func.coalesce(func.sum(value), literal(0))


def portfolio_summary(conn: Connection, as_of: dt.date, currency_code: str) -> PortfolioFigures:
    """The loans in `currency_code` started on or before `as_of`, as they stood at its end."""
    p = _positions(as_of, currency_code)
    paid, due_before, due_through = p.c.paid, p.c.due_before, p.c.due_through
    late = due_before > paid  # some installment is overdue
    outstanding = p.c.total_amount - amount_through(paid, p)
    missed = case((late, due_before - paid), else_=literal(0))
    paid_off = paid >= p.c.weeks
    delinquent = ~paid_off & (missed >= p.c.delinquency_threshold)
    active = ~paid_off & (missed < p.c.delinquency_threshold)
    # Days since the due date of installment paid + 1, the oldest overdue one.
    days_past_due = case((late, p.c.age_days - DAYS_PER_WEEK * (paid + 1)), else_=literal(0))
    one = literal(1)

    columns = {
        "loan_count": func.count(),
        "principal_disbursed": _total(p.c.principal_amount),
        "total_repayable": _total(p.c.total_amount),
        "outstanding_amount": _total(outstanding),
        "overdue_amount": _total(
            case((late, amount_through(due_before, p) - amount_through(paid, p)), else_=literal(0))
        ),
        "due_amount": _total(amount_through(due_through, p)),
        # amount_through is monotonic: min of the two amounts is the amount through the min.
        "collected_toward_due": _total(
            amount_through(case((paid < due_through, paid), else_=due_through), p)
        ),
    }
    for name, condition in (("active", active), ("delinquent", delinquent), ("paid", paid_off)):
        columns[f"{name}_count"] = _total(one, condition)
        columns[f"{name}_principal"] = _total(p.c.principal_amount, condition)
        columns[f"{name}_outstanding"] = _total(outstanding, condition)
    for i, (low, high) in enumerate(PAR_BUCKETS):
        in_bucket = days_past_due >= low
        if high is not None:
            in_bucket = in_bucket & (days_past_due <= high)
        columns[f"par{i}_count"] = _total(one, in_bucket)
        columns[f"par{i}_outstanding"] = _total(outstanding, in_bucket)

    row = conn.execute(select(*(c.label(name) for name, c in columns.items()))).one()
    # PostgreSQL's sum(bigint) is numeric (Decimal): back to exact ints.
    v = {name: int(value) for name, value in row._mapping.items()}

    def status(name: str) -> StatusFigures:
        return StatusFigures(v[f"{name}_count"], v[f"{name}_principal"], v[f"{name}_outstanding"])

    unpaid_loans = v["active_count"] + v["delinquent_count"]
    due, toward_due = v["due_amount"], v["collected_toward_due"]
    return PortfolioFigures(
        loan_count=v["loan_count"],
        active=status("active"),
        delinquent=status("delinquent"),
        paid=status("paid"),
        principal_disbursed=v["principal_disbursed"],
        total_repayable=v["total_repayable"],
        collected_amount=v["total_repayable"] - v["outstanding_amount"],
        outstanding_amount=v["outstanding_amount"],
        overdue_amount=v["overdue_amount"],
        due_amount=due,
        collected_toward_due=toward_due,
        portfolio_at_risk=tuple(
            RiskBucketFigures(low, high, v[f"par{i}_count"], v[f"par{i}_outstanding"])
            for i, (low, high) in enumerate(PAR_BUCKETS)
        ),
        delinquency_rate_bps=(
            v["delinquent_count"] * BPS_DENOMINATOR // unpaid_loans if unpaid_loans else 0
        ),
        collection_rate_bps=min(toward_due, due) * BPS_DENOMINATOR // due if due else 0,
    )
