"""Portfolio figures at a date: which loans count, what each adds, the rates.

A portfolio is the loans of one currency started on or before a date, each as
it stood at the end of that date (a Position), with the interest its payoffs
waived and its write-off, if any. Every summed figure is a sum of
per-loan amounts (`loan_totals`); the rates and the collected amount are
derived from the sums (`figures_from_totals`). Storage computes the same sums
in one SQL statement, whose twins are in loanbilling.storage.sql, and hands
them to `figures_from_totals`; tests/integration/test_portfolio_sql.py
compares it with `portfolio_figures` on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loanbilling.domain.loan import BPS_DENOMINATOR, LoanStatus, LoanTerms, Position, WriteOff

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
    # Written off on or before as_of: in no other status and in no PAR bucket.
    written_off: StatusFigures
    principal_disbursed: int
    total_repayable: int
    # Cash: payments dated on or before as_of. total_repayable = collected_amount
    # + outstanding_amount + waived_interest_amount.
    collected_amount: int
    outstanding_amount: int
    overdue_amount: int
    due_amount: int
    # Of due_amount, what has been paid: paying ahead of the schedule is not counted.
    collected_toward_due: int
    portfolio_at_risk: tuple[RiskBucketFigures, ...]
    delinquency_rate_bps: int
    collection_rate_bps: int
    # Interest waived by early payoffs (WAIVE_UNDUE) dated on or before as_of: it
    # counts in the paid amounts A without ever being received.
    waived_interest_amount: int = 0
    # What the write-offs dated on or before as_of gave up.
    written_off_principal_amount: int = 0
    written_off_interest_amount: int = 0
    # Live recoveries dated on or before as_of: part of collected_amount.
    recovered_amount: int = 0


def in_portfolio(terms: LoanTerms, as_of: dt.date, currency_code: str) -> bool:
    """A portfolio at a date counts the loans in its currency started on or before it."""
    return terms.currency_code == currency_code and terms.start_date <= as_of


def weeks_due_through(terms: LoanTerms, on: dt.date) -> int:
    """How many installments fell due on or before `on`: those due before the next day."""
    if on == dt.date.max:  # no next day; every installment falls due before it
        return terms.weeks
    return terms.weeks_due_before(on + dt.timedelta(days=1))


def due_amount(position: Position) -> int:
    """The installments due on or before as_of, paid or not."""
    return position.terms.amount_through(weeks_due_through(position.terms, position.as_of))


def collected_toward_due(position: Position) -> int:
    """Of `due_amount`, what has been paid: installments paid ahead are not counted."""
    return min(position.paid_amount, due_amount(position))


def in_risk_bucket(days_past_due: int, bucket: tuple[int, int | None]) -> bool:
    low, high = bucket
    return days_past_due >= low and (high is None or days_past_due <= high)


def rate_bps(part: int, whole: int) -> int:
    """part / whole in basis points, rounded down; 0 when there is no whole."""
    return part * BPS_DENOMINATOR // whole if whole else 0


# The summed figures, by name: what `loan_totals` gives per loan and what storage
# sums in SQL (loanbilling.storage.sql.loan_totals), then `figures_from_totals` reads.
# Per status and per PAR bucket: (count, principal, outstanding) / (count, outstanding).
STATUS_TOTALS: dict[LoanStatus, tuple[str, str, str]] = {
    status: (f"{key}_count", f"{key}_principal", f"{key}_outstanding")
    for status, key in ((s, s.value.lower()) for s in LoanStatus)
}
BUCKET_TOTALS: tuple[tuple[str, str], ...] = tuple(
    (f"par{i}_count", f"par{i}_outstanding") for i in range(len(PAR_BUCKETS))
)
TOTALS: tuple[str, ...] = (
    "loan_count",
    "principal_disbursed",
    "total_repayable",
    "outstanding_amount",
    "overdue_amount",
    "due_amount",
    "collected_toward_due",
    "waived_interest_amount",
    "written_off_principal_amount",
    "written_off_interest_amount",
    "recovered_amount",
    *(name for names in STATUS_TOTALS.values() for name in names),
    *(name for names in BUCKET_TOTALS for name in names),
)


def loan_totals(
    position: Position, waived_interest_amount: int, write_off: WriteOff | None
) -> dict[str, int]:
    """What one loan of the portfolio adds to each of TOTALS (0 where it is not counted).
    `waived_interest_amount` is the interest its payoffs dated on or before as_of
    waived (WAIVE_UNDUE): part of A, never received. `write_off` is the loan's
    (Loan.write_off, whatever its date); it counts once the position is written off."""
    if (write_off.on if write_off is not None else None) != position.written_off_on:
        raise ValueError("the write-off is not the one of the position's loan")
    terms = position.terms
    outstanding = position.outstanding_amount
    totals = dict.fromkeys(TOTALS, 0)
    totals.update(
        loan_count=1,
        principal_disbursed=terms.principal_amount,
        total_repayable=terms.total_amount,
        outstanding_amount=outstanding,
        overdue_amount=position.overdue_amount,
        due_amount=due_amount(position),
        collected_toward_due=collected_toward_due(position),
        waived_interest_amount=waived_interest_amount,
    )
    count, principal, owed = STATUS_TOTALS[position.status]
    totals.update({count: 1, principal: terms.principal_amount, owed: outstanding})
    if position.written_off:
        assert write_off is not None
        given_up = write_off.principal_amount + write_off.interest_amount
        totals.update(
            written_off_principal_amount=write_off.principal_amount,
            written_off_interest_amount=write_off.interest_amount,
            # What A gained since: no payment is dated before the write-off, and only
            # recoveries can be reversed after it.
            recovered_amount=given_up - outstanding,
        )
    else:  # at risk: only a loan not written off (a written-off one is a loss taken)
        for bucket, (count, owed) in zip(PAR_BUCKETS, BUCKET_TOTALS, strict=True):
            if in_risk_bucket(position.days_past_due, bucket):
                totals.update({count: 1, owed: outstanding})
    return totals


def figures_from_totals(totals: Mapping[str, int]) -> PortfolioFigures:
    """The portfolio's figures from the sums over its loans of `loan_totals`."""

    def status(s: LoanStatus) -> StatusFigures:
        return StatusFigures(*(totals[name] for name in STATUS_TOTALS[s]))

    active, delinquent = status(LoanStatus.ACTIVE), status(LoanStatus.DELINQUENT)
    due, toward_due = totals["due_amount"], totals["collected_toward_due"]
    return PortfolioFigures(
        loan_count=totals["loan_count"],
        active=active,
        delinquent=delinquent,
        paid=status(LoanStatus.PAID),
        written_off=status(LoanStatus.WRITTEN_OFF),
        principal_disbursed=totals["principal_disbursed"],
        total_repayable=totals["total_repayable"],
        # What A holds less what was waived: the cash received.
        collected_amount=totals["total_repayable"]
        - totals["outstanding_amount"]
        - totals["waived_interest_amount"],
        outstanding_amount=totals["outstanding_amount"],
        overdue_amount=totals["overdue_amount"],
        due_amount=due,
        collected_toward_due=toward_due,
        portfolio_at_risk=tuple(
            RiskBucketFigures(low, high, totals[count], totals[owed])
            for (low, high), (count, owed) in zip(PAR_BUCKETS, BUCKET_TOTALS, strict=True)
        ),
        delinquency_rate_bps=rate_bps(
            delinquent.loan_count, active.loan_count + delinquent.loan_count
        ),
        collection_rate_bps=rate_bps(toward_due, due),
        waived_interest_amount=totals["waived_interest_amount"],
        written_off_principal_amount=totals["written_off_principal_amount"],
        written_off_interest_amount=totals["written_off_interest_amount"],
        recovered_amount=totals["recovered_amount"],
    )


def portfolio_figures(
    loans: Iterable[tuple[Position, int, WriteOff | None]],
) -> PortfolioFigures:
    """The figures of a portfolio: `loans` are its loans (see `in_portfolio`) at the
    end of one date, each as `loan_totals` takes it: (its Position, the interest its
    payoffs dated on or before that date waived, its write-off or None)."""
    sums = dict.fromkeys(TOTALS, 0)
    for position, waived, write_off in loans:
        for name, value in loan_totals(position, waived, write_off).items():
            sums[name] += value
    return figures_from_totals(sums)
