"""Reads of numbered outbox events, in sequence order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Row, select

from loanbilling.domain.events import EventKind
from loanbilling.storage.tables import event_sequence, events


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    kind: EventKind
    loan_id: int
    customer_id: int
    week_number: int
    business_date: dt.date
    created_at: dt.datetime
    amount: int
    due_date: dt.date | None
    missed_installments: int
    overdue_amount: int
    days_past_due: int
    outstanding_amount: int
    currency_code: str
    payment_id: int | None


@dataclass(frozen=True, slots=True)
class EventFilter:
    kinds: frozenset[EventKind]
    loan_id: int | None = None
    customer_id: int | None = None

    def matches(self, event: StoredEvent) -> bool:
        return (
            event.kind in self.kinds
            and (self.loan_id is None or event.loan_id == self.loan_id)
            and (self.customer_id is None or event.customer_id == self.customer_id)
        )


def event_from_row(row: Row) -> StoredEvent:
    return StoredEvent(
        sequence=row.sequence,
        kind=EventKind(row.kind),
        loan_id=row.loan_id,
        customer_id=row.customer_id,
        week_number=row.week_number,
        business_date=row.business_date,
        created_at=row.created_at,
        amount=row.amount,
        due_date=row.due_date,
        missed_installments=row.missed_installments,
        overdue_amount=row.overdue_amount,
        days_past_due=row.days_past_due,
        outstanding_amount=row.outstanding_amount,
        currency_code=row.currency_code,
        payment_id=row.payment_id,
    )


def last_sequence(conn: Connection) -> int:
    return conn.execute(
        select(event_sequence.c.last_sequence).where(event_sequence.c.id == 1)
    ).scalar_one()


def events_after(
    conn: Connection,
    after_sequence: int,
    *,
    limit: int,
    up_to: int | None = None,
    only: EventFilter | None = None,
) -> list[StoredEvent]:
    """Numbered events with sequence in (after_sequence, up_to], oldest first."""
    query = (
        select(events)
        .where(events.c.sequence > after_sequence)
        .order_by(events.c.sequence)
        .limit(limit)
    )
    if up_to is not None:
        query = query.where(events.c.sequence <= up_to)
    if only is not None:
        query = query.where(events.c.kind.in_([k.value for k in only.kinds]))
        if only.loan_id is not None:
            query = query.where(events.c.loan_id == only.loan_id)
        if only.customer_id is not None:
            query = query.where(events.c.customer_id == only.customer_id)
    return [event_from_row(row) for row in conn.execute(query)]
