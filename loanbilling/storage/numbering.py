"""Numbers committed outbox events in commit order.

Writers insert events with `sequence` NULL. A numbering, under the row lock of
`event_sequence`, gives the pending committed events the next numbers and
commits. Numberings on every replica serialise on that lock, so numbers are
handed out in increasing order and become visible all at once: a reader that
follows `sequence` sees no gap now that is filled later. Writers never touch
the lock, so payments do not queue behind one another for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text, update

from loanbilling.domain.events import Event
from loanbilling.storage.database import is_postgresql, transaction
from loanbilling.storage.event_store import event_from_row
from loanbilling.storage.notifications import ANONYMOUS, NOTIFY_CHANNEL
from loanbilling.storage.tables import event_sequence, events

HAND_OVER = 500  # at most this many numbered events come back with a numbering


@dataclass(frozen=True, slots=True)
class Numbered:
    """What a numbering did: how many, the newest sequence, and (PostgreSQL, up
    to HAND_OVER) the events themselves, oldest first, for the local hub."""

    count: int
    newest: int
    events: list[Event] | None = None


# PostgreSQL: after the lock, one statement numbers, moves the counter, notifies
# (payload: loanbilling.storage.notifications) and returns the numbered events
# (four round trips with BEGIN and COMMIT, not six; and the local hub needs no
# read of its own). The pending events are chosen by a statement that starts
# after the lock is held, so that its snapshot sees every event an earlier
# holder numbered (READ COMMITTED).
_LOCK = text("SELECT last_sequence FROM event_sequence WHERE id = 1 FOR UPDATE")
_NUMBER = text(
    """
    WITH pending AS (
        SELECT id, :last + row_number() OVER (ORDER BY id) AS number
        FROM events WHERE sequence IS NULL ORDER BY id LIMIT :limit
    ), numbered AS (
        UPDATE events SET sequence = pending.number FROM pending
        WHERE events.id = pending.id
        RETURNING events.*
    ), moved AS (
        UPDATE event_sequence SET last_sequence = (SELECT max(sequence) FROM numbered)
        WHERE id = 1 AND EXISTS (SELECT FROM numbered)
        RETURNING pg_notify(:channel, last_sequence::text || ' ' || :origin)
    )
    SELECT numbered.* FROM numbered CROSS JOIN moved ORDER BY numbered.sequence
    """
)


def number_pending(engine: Engine, limit: int, origin: str = ANONYMOUS) -> Numbered:
    """Numbers up to `limit` pending events, in one transaction. On PostgreSQL
    the numbering's NOTIFY carries `origin`."""
    if is_postgresql(engine):
        with transaction(engine, write=True) as conn:
            last = conn.execute(_LOCK).scalar_one()
            rows = conn.execute(
                _NUMBER,
                {"last": last, "limit": limit, "channel": NOTIFY_CHANNEL, "origin": origin},
            ).all()
        fresh = [event_from_row(row) for row in rows] if len(rows) <= HAND_OVER else None
        return Numbered(len(rows), last + len(rows), fresh)
    with transaction(engine, write=True) as conn:
        last = conn.execute(
            select(event_sequence.c.last_sequence).where(event_sequence.c.id == 1).with_for_update()
        ).scalar_one()
        pending = (
            select(
                events.c.id,
                (last + func.row_number().over(order_by=events.c.id)).label("number"),
            )
            .where(events.c.sequence.is_(None))
            .order_by(events.c.id)
            .limit(limit)
            .subquery()
        )
        numbered = conn.execute(
            update(events).where(events.c.id == pending.c.id).values(sequence=pending.c.number)
        ).rowcount
        if numbered:
            conn.execute(
                update(event_sequence)
                .where(event_sequence.c.id == 1)
                .values(last_sequence=last + numbered)
            )
        return Numbered(numbered, last + numbered)


def number_all(engine: Engine, limit: int = 5000, origin: str = ANONYMOUS) -> Numbered:
    """Numbers every pending event. A short batch means none was left, so the
    common case costs one transaction, not a second that finds nothing. The
    events come along only when one pass numbered them all."""
    total = 0
    passes = 0
    while True:
        numbered = number_pending(engine, limit, origin)
        total += numbered.count
        passes += 1
        if numbered.count < limit:
            if passes == 1:
                return numbered
            return Numbered(total, numbered.newest)
