"""Numbers committed outbox events in commit order.

Writers insert each event with a row in `pending_events`. A numbering, under
the row lock of `event_sequence`, gives the pending committed events the next
numbers (rows of `event_numbers`), deletes their pending rows and commits.
Numberings on every replica serialise on that lock, so numbers are handed out
in increasing order and become visible all at once: a reader that follows
them sees no gap now that is filled later. Writers never touch the lock, so
payments do not queue behind one another for it; and the event's own row is
never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, text, update

from loanbilling.domain.events import Event
from loanbilling.storage.database import is_postgresql, transaction
from loanbilling.storage.event_store import event_from_row
from loanbilling.storage.notifications import ANONYMOUS, NOTIFY_CHANNEL
from loanbilling.storage.tables import event_numbers, event_sequence, pending_events

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
# after the lock is held, so that its snapshot sees the pending rows an earlier
# holder took as gone (READ COMMITTED).
#
# The planner cannot know how few events a numbering takes (usually a handful,
# up to :limit), and guessed hundreds: it deleted through a scan of all of
# pending_events and joined a scan of the whole events table, 0.42 ms of
# PostgreSQL's CPU per numbering and growing with the log (docs/benchmarks.md,
# round five). `= ANY (ARRAY(...))` deletes through the index, and the LATERAL
# subquery, kept apart by OFFSET 0, fetches each event by its key.
_LOCK = text("SELECT last_sequence FROM event_sequence WHERE id = 1 FOR UPDATE")
NUMBER_PENDING = text(
    """
    WITH taken AS (
        DELETE FROM pending_events
        WHERE event_id = ANY (ARRAY(
            SELECT event_id FROM pending_events ORDER BY event_id LIMIT :limit
        ))
        RETURNING event_id
    ), numbered AS (
        INSERT INTO event_numbers (sequence, event_id)
        SELECT :last + row_number() OVER (ORDER BY event_id), event_id FROM taken
        RETURNING sequence, event_id
    ), moved AS (
        UPDATE event_sequence SET last_sequence = (SELECT max(sequence) FROM numbered)
        WHERE id = 1 AND EXISTS (SELECT FROM numbered)
        RETURNING pg_notify(:channel, last_sequence::text || ' ' || :origin)
    )
    SELECT event.*, numbered.sequence
    FROM numbered
    CROSS JOIN LATERAL (SELECT * FROM events WHERE events.id = numbered.event_id OFFSET 0) AS event
    CROSS JOIN moved
    ORDER BY numbered.sequence
    """
)


def number_pending(engine: Engine, limit: int, origin: str = ANONYMOUS) -> Numbered:
    """Numbers up to `limit` pending events, in one transaction. On PostgreSQL
    the numbering's NOTIFY carries `origin`."""
    if is_postgresql(engine):
        with transaction(engine, write=True) as conn:
            last = conn.execute(_LOCK).scalar_one()
            rows = conn.execute(
                NUMBER_PENDING,
                {"last": last, "limit": limit, "channel": NOTIFY_CHANNEL, "origin": origin},
            ).all()
        fresh = [event_from_row(row) for row in rows] if len(rows) <= HAND_OVER else None
        return Numbered(len(rows), last + len(rows), fresh)
    with transaction(engine, write=True) as conn:
        last = conn.execute(
            select(event_sequence.c.last_sequence).where(event_sequence.c.id == 1).with_for_update()
        ).scalar_one()
        taken = (
            conn.execute(
                select(pending_events.c.event_id).order_by(pending_events.c.event_id).limit(limit)
            )
            .scalars()
            .all()
        )
        if taken:
            conn.execute(
                insert(event_numbers),
                [{"sequence": last + n, "event_id": e} for n, e in enumerate(taken, 1)],
            )
            # SQLite has one writer at a time: no pending row below the last one
            # taken was left out, so the range deletes exactly those taken.
            conn.execute(delete(pending_events).where(pending_events.c.event_id <= taken[-1]))
            conn.execute(
                update(event_sequence)
                .where(event_sequence.c.id == 1)
                .values(last_sequence=last + len(taken))
            )
        return Numbered(len(taken), last + len(taken))


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
