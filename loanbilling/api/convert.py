"""Protobuf <-> domain conversions, in one place."""

from __future__ import annotations

import datetime as dt

from google.type import date_pb2
from microfin.loanbilling.v1 import events_pb2
from microfin.loanbilling.v1 import resources_pb2 as pb

from loanbilling.domain.errors import InvalidArgument
from loanbilling.domain.events import EventKind
from loanbilling.domain.loan import InstallmentStatus, LoanStatus
from loanbilling.services.billing import LoanAt, LoanWithSchedule, ScheduleLine
from loanbilling.storage.event_store import StoredEvent
from loanbilling.storage.repository import CustomerRecord, PaymentRecord

LOAN_STATUS_TO_PB = {
    LoanStatus.ACTIVE: pb.LOAN_STATUS_ACTIVE,
    LoanStatus.DELINQUENT: pb.LOAN_STATUS_DELINQUENT,
    LoanStatus.PAID: pb.LOAN_STATUS_PAID,
}
LOAN_STATUS_FROM_PB = {v: k for k, v in LOAN_STATUS_TO_PB.items()}
INSTALLMENT_STATUS_TO_PB = {
    InstallmentStatus.UNPAID: pb.INSTALLMENT_STATUS_UNPAID,
    InstallmentStatus.OVERDUE: pb.INSTALLMENT_STATUS_OVERDUE,
    InstallmentStatus.PAID: pb.INSTALLMENT_STATUS_PAID,
}


def date_from_pb(message, field_name: str) -> dt.date | None:
    """The date in `message.field_name`, or None when the field is unset."""
    if not message.HasField(field_name):
        return None
    value: date_pb2.Date = getattr(message, field_name)
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument.of(
            field_name,
            f"{value.year:04d}-{value.month:02d}-{value.day:02d} is not a calendar date "
            "(year 1-9999, month 1-12, a day of that month)",
        ) from None


def date_to_pb(value: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def loan_status_from_pb(value: int) -> LoanStatus | None:
    if value == pb.LOAN_STATUS_UNSPECIFIED:
        return None
    try:
        return LOAN_STATUS_FROM_PB[value]
    except KeyError:
        raise InvalidArgument.of("status", f"{value} is not a LoanStatus value") from None


def customer_to_pb(customer: CustomerRecord) -> pb.Customer:
    return pb.Customer(
        id=customer.id, name=customer.name, email=customer.email, phone=customer.phone
    )


def schedule_line_to_pb(line: ScheduleLine) -> pb.Installment:
    inst = line.installment
    message = pb.Installment(
        week_number=inst.week_number,
        due_date=date_to_pb(inst.due_date),
        amount=inst.amount,
        principal_amount=inst.principal_amount,
        interest_amount=inst.interest_amount,
        status=INSTALLMENT_STATUS_TO_PB[line.status],
    )
    if line.paid_date is not None:
        message.paid_date.CopyFrom(date_to_pb(line.paid_date))
    return message


def loan_to_pb(view: LoanAt) -> pb.Loan:
    loan, position, terms = view.loan, view.position, view.loan.terms
    message = pb.Loan(
        id=loan.id,
        customer_id=loan.customer_id,
        principal_amount=terms.principal_amount,
        interest_amount=terms.interest_amount,
        total_amount=terms.total_amount,
        interest_rate_bps=terms.interest_rate_bps,
        weeks=terms.weeks,
        weekly_payment=terms.weekly_payment,
        outstanding_amount=position.outstanding_amount,
        status=LOAN_STATUS_TO_PB[position.status],
        start_date=date_to_pb(terms.start_date),
        currency_code=terms.currency_code,
        delinquency_threshold=terms.delinquency_threshold,
        as_of=date_to_pb(position.as_of),
    )
    if isinstance(view, LoanWithSchedule):
        message.schedule.extend(schedule_line_to_pb(line) for line in view.schedule)
    return message


def next_installment_to_pb(view: LoanAt) -> pb.Installment | None:
    nxt = view.position.next_installment
    if nxt is None:
        return None
    return pb.Installment(
        week_number=nxt.week_number,
        due_date=date_to_pb(nxt.due_date),
        amount=nxt.amount,
        principal_amount=nxt.principal_amount,
        interest_amount=nxt.interest_amount,
        status=INSTALLMENT_STATUS_TO_PB[view.position.installment_status(nxt.week_number)],
    )


def payment_to_pb(payment: PaymentRecord) -> pb.Payment:
    return pb.Payment(
        id=payment.id,
        loan_id=payment.loan_id,
        amount=payment.amount,
        currency_code=payment.currency_code,
        payment_date=date_to_pb(payment.payment_date),
        settled_week_numbers=payment.settled_week_numbers,
        idempotency_key=payment.idempotency_key,
        outstanding_amount_after=payment.outstanding_after,
    )


EVENT_KIND_TO_PB = {
    EventKind.PAYMENT_DUE_SOON: events_pb2.EVENT_KIND_PAYMENT_DUE_SOON,
    EventKind.INSTALLMENT_MISSED: events_pb2.EVENT_KIND_INSTALLMENT_MISSED,
    EventKind.LOAN_DELINQUENT: events_pb2.EVENT_KIND_LOAN_DELINQUENT,
    EventKind.DELINQUENCY_CURED: events_pb2.EVENT_KIND_DELINQUENCY_CURED,
    EventKind.PAYMENT_RECEIVED: events_pb2.EVENT_KIND_PAYMENT_RECEIVED,
    EventKind.LOAN_PAID_OFF: events_pb2.EVENT_KIND_LOAN_PAID_OFF,
    EventKind.LOAN_CREATED: events_pb2.EVENT_KIND_LOAN_CREATED,
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


def event_to_pb(event: StoredEvent) -> events_pb2.Event:
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
    created = event.created_at
    if created.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
        created = created.replace(tzinfo=dt.UTC)
    message.create_time.FromDatetime(created)
    if event.due_date is not None:
        message.due_date.CopyFrom(date_to_pb(event.due_date))
    return message
