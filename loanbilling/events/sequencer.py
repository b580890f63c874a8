"""Numbers committed outbox events in commit order.

Writers insert events with `sequence` NULL. The sequencer, under the row lock
of `event_sequence`, gives the pending committed events the next numbers and
commits. Sequencers on every replica serialise on that lock, so numbers are
handed out in increasing order and become visible all at once: a reader that
follows `sequence` sees no gap now that is filled later. Writers never touch
the lock, so payments do not queue behind one another for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text, update

from loanbilling.storage.database import is_postgresql, transaction
from loanbilling.storage.event_store import StoredEvent, event_from_row
from loanbilling.storage.tables import event_sequence, events

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "loanbilling_events"
# A NOTIFY's payload: "<newest sequence> <origin>", the origin naming the
# sequencer that numbered (a token of its server's), so that a server's
# listener can skip its own numberings, which its sequencer hands over itself.
ANONYMOUS = "-"
HAND_OVER = 500  # at most this many numbered events go to the hub with the wake


def assign_sequences(engine: Engine, limit: int = 5000) -> int:
    """Numbers up to `limit` pending events; returns how many it numbered."""
    return _number(engine, limit).count


@dataclass(frozen=True, slots=True)
class Numbered:
    """What a pass numbered: how many, the newest sequence, and (PostgreSQL, up to
    HAND_OVER) the events themselves, oldest first, for the local hub."""

    count: int
    newest: int
    events: list[StoredEvent] | None = None


# PostgreSQL: after the lock, one statement numbers, moves the counter, notifies
# and returns the numbered events (four round trips with BEGIN and COMMIT, not
# six; and the local hub needs no read of its own). The pending events are
# chosen by a statement that starts after the lock is held, so that its
# snapshot sees every event an earlier holder numbered (READ COMMITTED).
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


def _number(engine: Engine, limit: int, origin: str = ANONYMOUS) -> Numbered:
    """Numbers up to `limit` pending events."""
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


def assign_all(engine: Engine, limit: int = 5000) -> int:
    """Numbers every pending event; returns how many it numbered."""
    return _number_all(engine, limit).count


def _number_all(engine: Engine, limit: int = 5000, origin: str = ANONYMOUS) -> Numbered:
    """Numbers every pending event. A short batch means none was left, so the
    common case costs one transaction, not a second that finds nothing. The
    events come along only when one pass numbered them all."""
    total = 0
    passes = 0
    while True:
        numbered = _number(engine, limit, origin)
        total += numbered.count
        passes += 1
        if numbered.count < limit:
            if passes == 1:
                return numbered
            return Numbered(total, numbered.newest)


async def run_sequencer(
    engine: Engine,
    wake: asyncio.Event,
    numbered: Callable[[Numbered], None],
    *,
    fallback_poll_s: float = 1.0,
    origin: str = ANONYMOUS,
) -> None:
    """Numbers events whenever `wake` is set (a local commit wrote some), and on a
    slow tick for events another process committed and could not number (it crashed).
    Calls `numbered(what)` on the loop after a pass that numbered any; its
    NOTIFYs carry `origin`."""
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sequencer")
    try:
        while True:
            try:
                async with asyncio.timeout(fallback_poll_s):  # not wait_for: see EventHub.run
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            try:
                done = await loop.run_in_executor(worker, _number_all, engine, 5000, origin)
                if done.count:
                    numbered(done)
            except Exception as error:  # noqa: BLE001 - the database may be away; retry
                log.warning("sequencer: %s", error)
    finally:
        worker.shutdown(wait=False)
