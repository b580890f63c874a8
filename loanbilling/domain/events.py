"""Which events a change produces, and the facts each one carries."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace

from loanbilling.domain.loan import LoanStatus, LoanTerms, Position


class EventKind(enum.Enum):
    PAYMENT_DUE_SOON = "PAYMENT_DUE_SOON"
    INSTALLMENT_MISSED = "INSTALLMENT_MISSED"
    LOAN_DELINQUENT = "LOAN_DELINQUENT"
    DELINQUENCY_CURED = "DELINQUENCY_CURED"
    PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
    LOAN_PAID_OFF = "LOAN_PAID_OFF"
    LOAN_CREATED = "LOAN_CREATED"
    PAYMENT_REVERSED = "PAYMENT_REVERSED"
    LOAN_REOPENED = "LOAN_REOPENED"
    LOAN_WRITTEN_OFF = "LOAN_WRITTEN_OFF"


# What a notification stream carries when the subscriber names no kinds.
DELINQUENCY_KINDS = frozenset(
    {
        EventKind.PAYMENT_DUE_SOON,
        EventKind.INSTALLMENT_MISSED,
        EventKind.LOAN_DELINQUENT,
        EventKind.DELINQUENCY_CURED,
    }
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write, unique per loan, kind, `week_number` and
    `history_version`: the loan's version of its live history, which every
    reversal and recovery bumps, since after one the same installment can be
    settled, missed or turn the loan delinquent again."""

    kind: EventKind
    loan_id: int
    customer_id: int
    week_number: int
    business_date: dt.date
    amount: int
    due_date: dt.date | None
    missed_installments: int
    overdue_amount: int
    days_past_due: int
    outstanding_amount: int
    currency_code: str
    payment_id: int | None = None
    history_version: int = 0


def in_version(new_events: list[NewEvent], history_version: int) -> list[NewEvent]:
    """The events, keyed in the loan's `history_version` (the one after the write)."""
    return [replace(e, history_version=history_version) for e in new_events]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(NewEvent):
    """An event as the outbox holds it once numbered: what every reader (streams,
    the broker relay) sees. Sequences have no gaps and follow commit order."""

    sequence: int
    created_at: dt.datetime  # when it was written, timezone-aware


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscriber gets: any of `kinds`, narrowed to one loan and
    one customer when those are named."""

    kinds: frozenset[EventKind]
    loan_id: int | None = None
    customer_id: int | None = None

    def matches(self, event: NewEvent) -> bool:
        return (
            event.kind in self.kinds
            and (self.loan_id is None or event.loan_id == self.loan_id)
            and (self.customer_id is None or event.customer_id == self.customer_id)
        )


def _event(
    kind: EventKind,
    loan_id: int,
    customer_id: int,
    position: Position,
    *,
    week_number: int,
    amount: int,
    due_date: dt.date | None,
    payment_id: int | None = None,
) -> NewEvent:
    return NewEvent(
        kind=kind,
        loan_id=loan_id,
        customer_id=customer_id,
        week_number=week_number,
        business_date=position.as_of,
        amount=amount,
        due_date=due_date,
        missed_installments=position.missed_installments,
        overdue_amount=position.overdue_amount,
        days_past_due=position.days_past_due,
        outstanding_amount=position.outstanding_amount,
        currency_code=position.terms.currency_code,
        payment_id=payment_id,
    )


def installment_event(
    kind: EventKind, loan_id: int, customer_id: int, position: Position, week_number: int
) -> NewEvent:
    """An event about one installment (missed, due soon): its amount and due date."""
    installment = position.terms.installment(week_number)
    return _event(
        kind,
        loan_id,
        customer_id,
        position,
        week_number=week_number,
        amount=installment.amount,
        due_date=installment.due_date,
    )


def delinquent_event(loan_id: int, customer_id: int, position: Position) -> NewEvent:
    """ACTIVE -> DELINQUENT, keyed by the oldest overdue installment: a loan can
    only turn delinquent again after a payment moved that installment on."""
    oldest = position.paid_count + 1
    return _event(
        EventKind.LOAN_DELINQUENT,
        loan_id,
        customer_id,
        position,
        week_number=oldest,
        amount=position.overdue_amount,
        due_date=position.terms.due_date(oldest),
    )


def creation_events(
    loan_id: int, customer_id: int, terms: LoanTerms, today: dt.date
) -> list[NewEvent]:
    position = Position(terms, 0, today)
    created = _event(
        EventKind.LOAN_CREATED,
        loan_id,
        customer_id,
        position,
        week_number=0,
        amount=terms.total_amount,
        due_date=None,
    )
    if position.status is LoanStatus.DELINQUENT:  # started far enough in the past
        return [created, delinquent_event(loan_id, customer_id, position)]
    return [created]


def payment_events(
    loan_id: int,
    customer_id: int,
    *,
    payment_id: int,
    amount: int,
    last_week: int,
    at_payment: Position,
    at_today: Position,
    stored_before: LoanStatus,
) -> list[NewEvent]:
    """Payment received, plus the change of stored status the payment caused.

    The stored status is the one at the business date (`at_today`). Events a
    payment writes are keyed by the last week it settled: each installment is
    settled once, so each key is written once.
    """
    stored_after = at_today.status

    def event(kind: EventKind) -> NewEvent:
        return _event(
            kind,
            loan_id,
            customer_id,
            at_payment,
            week_number=last_week,
            amount=amount,
            due_date=at_payment.terms.due_date(last_week),
            payment_id=payment_id,
        )

    produced = [event(EventKind.PAYMENT_RECEIVED)]
    if stored_before is LoanStatus.DELINQUENT and stored_after is not LoanStatus.DELINQUENT:
        # Paying off a delinquent loan cures it too: delinquency subscribers hear of it.
        produced.append(event(EventKind.DELINQUENCY_CURED))
    if at_today.outstanding_amount == 0:
        # Also a written-off loan whose recoveries repaid it: it stays WRITTEN_OFF.
        produced.append(event(EventKind.LOAN_PAID_OFF))
    if stored_before is LoanStatus.ACTIVE and stored_after is LoanStatus.DELINQUENT:
        # Still behind after paying, before any sweep marked it: the transition is
        # this payment's to report.
        produced.append(delinquent_event(loan_id, customer_id, at_today))
    return produced


def reversal_events(
    loan_id: int,
    customer_id: int,
    *,
    payment_id: int,
    amount: int,
    at_today: Position,
    stored_before: LoanStatus,
) -> list[NewEvent]:
    """Payment reversed, plus the change of stored status it caused: a paid loan
    reopens, and a loan the reversal leaves behind turns delinquent. Loan-wide
    (week 0): a reversal starts a new history version, so each key is new."""
    stored_after = at_today.status
    produced = [
        _event(
            EventKind.PAYMENT_REVERSED,
            loan_id,
            customer_id,
            at_today,
            week_number=0,
            amount=amount,
            due_date=None,
            payment_id=payment_id,
        )
    ]
    if stored_before is LoanStatus.PAID and stored_after is not LoanStatus.PAID:
        produced.append(
            _event(
                EventKind.LOAN_REOPENED,
                loan_id,
                customer_id,
                at_today,
                week_number=0,
                amount=at_today.outstanding_amount,
                due_date=None,
                payment_id=payment_id,
            )
        )
    if (
        stored_before in (LoanStatus.ACTIVE, LoanStatus.PAID)
        and stored_after is LoanStatus.DELINQUENT
    ):
        produced.append(delinquent_event(loan_id, customer_id, at_today))
    return produced


def write_off_event(loan_id: int, customer_id: int, at_write_off: Position) -> NewEvent:
    """The loan was written off: its amount is what it still owed (once per loan)."""
    return _event(
        EventKind.LOAN_WRITTEN_OFF,
        loan_id,
        customer_id,
        at_write_off,
        week_number=0,
        amount=at_write_off.outstanding_amount,
        due_date=None,
    )
