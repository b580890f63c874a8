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
from loanbilling.storage.database import autocommit, is_postgresql, transaction
from loanbilling.storage.event_store import EVENT_COLUMNS, event_from_row
from loanbilling.storage.notifications import ANONYMOUS, NOTIFY_CHANNEL
from loanbilling.storage.tables import event_numbers, event_sequence, events, pending_events

HAND_OVER = 500  # at most this many numbered events come back with a numbering


@dataclass(frozen=True, slots=True)
class Numbered:
    """What a numbering did: how many, the newest sequence (None: it numbered
    none), and (PostgreSQL, up to HAND_OVER) the events themselves, oldest
    first, for the local hub."""

    count: int
    newest: int | None
    events: list[Event] | None = None


# PostgreSQL: one statement in autocommit calls number_pending_events (migration
# 0008). Under the row lock, it numbers, moves the counter, notifies (payload:
# loanbilling.storage.notifications) and returns the numbered events, so the
# local hub needs no read of its own. The pending events are chosen by a
# statement of the function that starts after the lock is held: its snapshot
# sees the pending rows an earlier holder took as gone (READ COMMITTED).
#
# Its SQL, and why its plan looks each event up by key, are in the migration; a
# change of the numbering is a migration that replaces the function.
#
# The columns are named to SQLAlchemy (.columns): it then builds the result's
# column map once, not from the cursor's description on every call.
NUMBER_PENDING = text(
    "SELECT "
    + ", ".join(f"(n.numbered_event).{name}" for name in EVENT_COLUMNS)
    + ", n.numbered_as AS sequence"
    " FROM number_pending_events(:limit, :channel, :origin) AS n"
).columns(*(events.c[name] for name in EVENT_COLUMNS), event_numbers.c.sequence)


def number_pending(engine: Engine, limit: int, origin: str = ANONYMOUS) -> Numbered:
    """Numbers up to `limit` pending events, in one transaction. On PostgreSQL
    the numbering's NOTIFY carries `origin`."""
    if is_postgresql(engine):
        with autocommit(engine) as conn:
            rows = conn.execute(
                NUMBER_PENDING, {"limit": limit, "channel": NOTIFY_CHANNEL, "origin": origin}
            ).all()
        if not rows:
            return Numbered(0, None)
        fresh = [event_from_row(row) for row in rows] if len(rows) <= HAND_OVER else None
        return Numbered(len(rows), rows[-1].sequence, fresh)
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
        return Numbered(len(taken), last + len(taken) if taken else None)


def number_all(engine: Engine, limit: int = 5000, origin: str = ANONYMOUS) -> Numbered:
    """Numbers every pending event. A short batch means none was left, so the
    common case costs one transaction, not a second that finds nothing. The
    events come along only when one pass numbered them all."""
    total = 0
    passes = 0
    newest = None
    while True:
        numbered = number_pending(engine, limit, origin)
        total += numbered.count
        passes += 1
        newest = numbered.newest or newest
        if numbered.count < limit:
            if passes == 1:
                return numbered
            return Numbered(total, newest)
