"""Portfolio figures at a date, aggregated by the database in one statement.

What the figures are is loanbilling.domain.portfolio; the statement sums, over
the loans of the portfolio, the SQL twins of each loan's totals (storage.sql)
and hands the sums to the domain's figures_from_totals; the interest waived
by payoffs is summed beside them over the payments that waived any. No loan
row is loaded into Python, and one statement sees one consistent snapshot on
both databases.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, literal, select

from loanbilling.domain.portfolio import PortfolioFigures, figures_from_totals
from loanbilling.storage.database import transaction
from loanbilling.storage.sql import (
    PositionSql,
    date_param,
    days_between,
    in_portfolio,
    installments_covered,
    loan_totals,
    paid_amount_at,
    waived_interest_through,
    weeks_due_before,
    weeks_due_through,
)
from loanbilling.storage.tables import loans


def _positions(as_of: dt.date, currency_code: str):
    """One row per loan of the portfolio: its terms and write-off, the amount paid
    by the end of as_of, A(as_of), its c(A), and the date's counters."""
    on = date_param(as_of)
    days = days_between(on, loans.c.start_date)
    due_before = weeks_due_before(on)
    paid = (
        select(
            loans.c.principal_amount,
            loans.c.total_amount,
            loans.c.weekly_payment,
            loans.c.weeks,
            loans.c.delinquency_threshold,
            loans.c.write_off_date,
            loans.c.written_off_principal_amount,
            loans.c.written_off_interest_amount,
            paid_amount_at(on).label("paid_amount"),
            due_before.label("due_before"),
            weeks_due_through(days).label("due_through"),
            days.label("age_days"),
        )
        .where(in_portfolio(on, currency_code))
        # A fence (OFFSET 0): neither database merges this subquery into the one
        # below, which would put paid_amount_at's payments subquery into each of
        # installments_covered's references to A.
        .offset(0)
        .subquery("paid")
    )
    return (
        select(paid, installments_covered(paid.c.paid_amount, paid).label("covered"))
        # Without MATERIALIZED both databases inline the CTE into the sums, and
        # would compute each loan's c(A) once per reference instead of once.
        .cte("positions")
        .prefix_with("MATERIALIZED")
    )


def _summary(as_of: dt.date, currency_code: str):
    p = _positions(as_of, currency_code)
    position = PositionSql(
        p,
        p.c.paid_amount,
        paid_count=p.c.covered,
        days=p.c.age_days,
        due_before=p.c.due_before,
        due_through=p.c.due_through,
        as_of=date_param(as_of),
    )
    # sum() over no rows is NULL: 0 instead.
    return select(
        *(
            func.coalesce(func.sum(value), literal(0)).label(name)
            for name, value in loan_totals(position).items()
        ),
        # Summed over the few payoffs that waived interest, not per loan.
        waived_interest_through(date_param(as_of), currency_code).label("waived_interest_amount"),
    )


def portfolio_summary(engine: Engine, as_of: dt.date, currency_code: str) -> PortfolioFigures:
    """The loans in `currency_code` started on or before `as_of`, as they stood at its end."""
    with transaction(engine, write=False) as conn:
        row = conn.execute(_summary(as_of, currency_code)).one()
    # PostgreSQL's sum(bigint) is numeric (Decimal): back to exact ints.
    return figures_from_totals({name: int(value) for name, value in row._mapping.items()})
