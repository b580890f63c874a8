"""Outbox events <-> microfin.loanbilling.v1.Event: the notification stream's
messages and the broker relay's message bodies are the same bytes."""

from __future__ import annotations

from microfin.loanbilling.v1 import events_pb2

from loanbilling.contract.dates import date_to_pb
from loanbilling.domain.errors import InvalidArgument
from loanbilling.domain.events import Event, EventKind

EVENT_KIND_TO_PB = {
    EventKind.PAYMENT_DUE_SOON: events_pb2.EVENT_KIND_PAYMENT_DUE_SOON,
    EventKind.INSTALLMENT_MISSED: events_pb2.EVENT_KIND_INSTALLMENT_MISSED,
    EventKind.LOAN_DELINQUENT: events_pb2.EVENT_KIND_LOAN_DELINQUENT,
    EventKind.DELINQUENCY_CURED: events_pb2.EVENT_KIND_DELINQUENCY_CURED,
    EventKind.PAYMENT_RECEIVED: events_pb2.EVENT_KIND_PAYMENT_RECEIVED,
    EventKind.LOAN_PAID_OFF: events_pb2.EVENT_KIND_LOAN_PAID_OFF,
    EventKind.LOAN_CREATED: events_pb2.EVENT_KIND_LOAN_CREATED,
    EventKind.PAYMENT_REVERSED: events_pb2.EVENT_KIND_PAYMENT_REVERSED,
    EventKind.LOAN_REOPENED: events_pb2.EVENT_KIND_LOAN_REOPENED,
    EventKind.LOAN_WRITTEN_OFF: events_pb2.EVENT_KIND_LOAN_WRITTEN_OFF,
}
EVENT_KIND_FROM_PB = {v: k for k, v in EVENT_KIND_TO_PB.items()}


def event_kinds_from_pb(values) -> frozenset[EventKind] | None:
    """The kinds asked for; None when none was named (unspecified ones are ignored)."""
    kinds = set()
    for value in values:
        if value == events_pb2.EVENT_KIND_UNSPECIFIED:
            continue
        if value not in EVENT_KIND_FROM_PB:
            raise InvalidArgument.of("kinds", f"{value} is not an EventKind value")
        kinds.add(EVENT_KIND_FROM_PB[value])
    return frozenset(kinds) or None


def event_to_pb(event: Event) -> events_pb2.Event:
    message = events_pb2.Event(
        sequence=event.sequence,
        kind=EVENT_KIND_TO_PB[event.kind],
        loan_id=event.loan_id,
        customer_id=event.customer_id,
        business_date=date_to_pb(event.business_date),
        week_number=event.week_number,
        amount=event.amount,
        missed_installments=event.missed_installments,
        overdue_amount=event.overdue_amount,
        days_past_due=event.days_past_due,
        outstanding_amount=event.outstanding_amount,
        currency_code=event.currency_code,
        payment_id=event.payment_id or 0,
    )
    message.create_time.FromDatetime(event.created_at)
    if event.due_date is not None:
        message.due_date.CopyFrom(date_to_pb(event.due_date))
    return message
