"""What a delinquency sweep writes for one loan at a business date.

The sweep visits every loan not stored PAID or WRITTEN_OFF and judges it at `as_of` by its
repayment state as stored now (its paid amount): a sweep of a past date does not
undo later payments. It reports each unpaid installment due before the end of
the reminder window once per (loan, kind, week, history version) -- missed if due before
`as_of`, due soon otherwise -- and turns a delinquent ACTIVE loan DELINQUENT.

Storage runs these rules as set-based SQL over whole batches: the twins are in
loanbilling.storage.sql, and tests/integration/test_sweep_sql.py compares them
with this module on both databases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loanbilling.domain.events import (
    EventKind,
    NewEvent,
    delinquent_event,
    in_version,
    installment_event,
)
from loanbilling.domain.loan import InstallmentStatus, Loan, LoanStatus, Position


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """The events a sweep writes for one loan, in write order, and whether it turns
    the loan's stored status from ACTIVE to DELINQUENT."""

    events: list[NewEvent]
    flips_to_delinquent: bool


def is_swept(status: LoanStatus) -> bool:
    """A sweep visits every loan whose stored status is neither PAID nor WRITTEN_OFF
    (the sweep writes nothing more for a written-off loan)."""
    return status not in (LoanStatus.PAID, LoanStatus.WRITTEN_OFF)


def reminder_window_end(as_of: dt.date, reminder_days: int) -> dt.date:
    """The day after the reminder window, which runs from as_of through
    as_of + reminder_days: unpaid installments due before it get an event."""
    return as_of + dt.timedelta(days=reminder_days + 1)


def sweep_position(loan: Loan, as_of: dt.date) -> Position:
    """The loan as a sweep at `as_of` judges it: its stored paid amount at that date."""
    return Position(loan.terms, loan.paid_amount, as_of)


def schedule_event_weeks(position: Position, reminder_days: int) -> range:
    """The unpaid installments due before the end of the reminder window, oldest first."""
    window_end = reminder_window_end(position.as_of, reminder_days)
    return range(position.paid_count + 1, position.terms.weeks_due_before(window_end) + 1)


def schedule_event_kind(position: Position, week_number: int) -> EventKind:
    """Missed when the unpaid installment is overdue (due before as_of), else due soon."""
    if position.installment_status(week_number) is InstallmentStatus.OVERDUE:
        return EventKind.INSTALLMENT_MISSED
    return EventKind.PAYMENT_DUE_SOON


def flips_to_delinquent(status: LoanStatus, position: Position) -> bool:
    """A loan stored ACTIVE that is delinquent at the sweep's date turns DELINQUENT."""
    return status is LoanStatus.ACTIVE and position.delinquent


def sweep_loan(loan: Loan, as_of: dt.date, reminder_days: int) -> SweepOutcome:
    """What a sweep at `as_of` with a reminder window of `reminder_days` writes for
    `loan`: its schedule events in week order, then "loan delinquent" if it flips.

    Events already written (same loan, kind and week) are not written again:
    that is the outbox's unique key, not this rule.
    """
    if not is_swept(loan.status):
        return SweepOutcome([], False)
    position = sweep_position(loan, as_of)
    events = [
        installment_event(
            schedule_event_kind(position, week), loan.id, loan.customer_id, position, week
        )
        for week in schedule_event_weeks(position, reminder_days)
    ]
    flips = flips_to_delinquent(loan.status, position)
    if flips:
        events.append(delinquent_event(loan.id, loan.customer_id, position))
    return SweepOutcome(in_version(events, loan.history_version), flips)
