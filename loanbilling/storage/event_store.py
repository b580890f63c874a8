"""The outbox row: how an event is written (with its pending row) and read back,
and reads of numbered events in sequence order."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields

from sqlalchemy import Connection, Row, Select, exists, insert, select

from loanbilling.domain.events import Event, EventFilter, EventKind, NewEvent
from loanbilling.storage.tables import (
    customers,
    event_numbers,
    event_sequence,
    events,
    loans,
    pending_events,
)

# The outbox row as a writer fills it: every field of NewEvent, and the time it
# was written. The one definition that the payment, loan and sweep writes use.
EVENT_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(NewEvent)), "created_at")


def event_row(event: NewEvent, now: dt.datetime) -> dict[str, object]:
    """The outbox row of `event`, keyed by EVENT_COLUMNS."""
    row: dict[str, object] = {name: getattr(event, name) for name in EVENT_COLUMNS[:-1]}
    row["kind"] = event.kind.value
    row["created_at"] = now
    return row


_QUEUE = insert(pending_events)

# Each numbered event beside its number: what a reader of the log selects from.
NUMBERED_EVENTS = event_numbers.join(events, events.c.id == event_numbers.c.event_id)


def queue_events(conn: Connection, event_ids: list[int]) -> None:
    """Marks the events just written as pending, for the sequencer to number."""
    if event_ids:
        conn.execute(_QUEUE, [{"event_id": event_id} for event_id in event_ids])


def event_from_row(row: Row) -> Event:
    """The numbered event a row of `events` and its `sequence` hold."""
    values = row._mapping
    read = {name: values[name] for name in EVENT_COLUMNS}
    read["kind"] = EventKind(read["kind"])
    if read["created_at"].tzinfo is None:  # SQLite's are naive; they were written in UTC
        read["created_at"] = read["created_at"].replace(tzinfo=dt.UTC)
    return Event(**read, sequence=values["sequence"])


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
) -> list[Event]:
    """Numbered events with sequence in (after_sequence, up_to], oldest first;
    with `only`, those it matches."""
    query = events_after_query(after_sequence, limit=limit, up_to=up_to, only=only)
    return [event_from_row(row) for row in conn.execute(query)]


def events_after_query(
    after_sequence: int, *, limit: int, up_to: int | None, only: EventFilter | None
) -> Select:
    """events_after's SELECT. A filter on a loan or a customer is served by the
    events' index on it, the numbers then joined by event id: a stream that
    follows one loan reads that loan's events, not the log."""
    number = event_numbers.c.sequence
    query = (
        select(events, number)
        .select_from(NUMBERED_EVENTS)
        .where(number > after_sequence)
        .order_by(number)
        .limit(limit)
    )
    if up_to is not None:
        query = query.where(number <= up_to)
    if only is not None:
        query = query.where(events.c.kind.in_([k.value for k in only.kinds]))
        if only.loan_id is not None:
            query = query.where(events.c.loan_id == only.loan_id)
        if only.customer_id is not None:
            query = query.where(events.c.customer_id == only.customer_id)
    return query


def filter_subjects(
    conn: Connection, loan_id: int | None, customer_id: int | None
) -> tuple[int | None, bool]:
    """What a stream's filter names, in one read by primary key: the customer of
    loan `loan_id` (None: no such loan, or none named), and whether customer
    `customer_id` exists (True when none is named)."""
    columns = []
    if loan_id is not None:
        columns.append(select(loans.c.customer_id).where(loans.c.id == loan_id).scalar_subquery())
    if customer_id is not None:
        columns.append(exists().where(customers.c.id == customer_id))
    if not columns:
        return None, True
    row = list(conn.execute(select(*columns)).one())
    owner = row.pop(0) if loan_id is not None else None
    return owner, bool(row[0]) if customer_id is not None else True
