"""One per server process: follows the outbox and serves every notification stream.

The hub alone reads new events from the database (when woken by the local
sequencer, by PostgreSQL NOTIFY from other replicas, or by a slow fallback
tick) and keeps the newest of them in a bounded ring. A stream whose cursor
is inside the ring is served from memory; one further behind (a replay, or a
slow client) reads its own pages from the database. Either way a stream holds
only its cursor: a slow subscriber costs no memory and holds back no one.

The hub follows the outbox on a thread and a connection of its own (`follower`,
`follower_outbox`): new events then reach the streams without queueing behind
work waiting for the worker threads. A stream's own reads (a replay) are
request work and run on the worker threads (`executor`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass

from loanbilling.domain.errors import OutOfRange
from loanbilling.domain.events import Event, EventFilter
from loanbilling.storage.outbox import Outbox

log = logging.getLogger(__name__)
PAGE = 500


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sequence: int


class _Subscriber:
    """A parked stream: its filter, how far it has looked, and what wakes it."""

    __slots__ = ("only", "cursor", "wake", "key")

    def __init__(self, only: EventFilter, cursor: int) -> None:
        self.only = only
        self.cursor = cursor
        self.wake = asyncio.Event()
        # Where the hub files it: the events that can match it are found by key.
        if only.loan_id is not None:
            self.key: tuple[str, int] | None = ("loan", only.loan_id)
        elif only.customer_id is not None:
            self.key = ("customer", only.customer_id)
        else:
            self.key = None  # any loan: looked at for every event


class HubClosed(Exception):
    """The server is shutting down: streams end so that clients resume elsewhere."""


class EventHub:
    def __init__(
        self,
        outbox: Outbox,
        executor: Executor,
        *,
        follower: Executor | None = None,
        follower_outbox: Outbox | None = None,
        ring_size: int = 4096,
        fallback_poll_s: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.executor = executor
        self.follower = follower or executor
        self.follower_outbox = follower_outbox or outbox
        self.fallback_poll_s = fallback_poll_s
        self.ring: deque[Event] = deque(maxlen=ring_size)
        self.last = 0  # the highest sequence the hub has loaded
        self._wake = asyncio.Event()
        # The newest sequence a wake announced (inf: unknown) since the hub last
        # looked: a wake for events the hub already holds costs no read.
        self._wanted: float = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._following = False  # the head is known: events may be handed over
        self._waiting: set[_Subscriber] = set()  # caught-up streams, parked
        self._filed: dict[tuple[str, int] | None, set[_Subscriber]] = {}  # the same, by key
        self.subscribers = 0
        self.closed = False

    async def close(self) -> None:
        """Ends every stream now rather than at the end of the shutdown grace period."""
        self.closed = True
        self._announce()

    # Following the outbox

    def wake(self, up_to: int | None = None) -> None:
        """Safe from any thread: events up to sequence `up_to` (None: unknown) may
        have been numbered."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._want, math.inf if up_to is None else up_to)

    def offer(self, fresh: list[Event]) -> None:
        """On the loop: events the local sequencer numbered and committed, oldest
        first. They are announced at once, without a read, when they follow on
        from what the hub holds; otherwise (another replica numbered events in
        between, or the hub does not know the head yet) the hub reads them."""
        if self._following and fresh and fresh[0].sequence == self.last + 1:
            self.ring.extend(fresh)
            self.last = fresh[-1].sequence
            self._announce(fresh)
        elif fresh:
            self._want(fresh[-1].sequence)

    def _want(self, up_to: float) -> None:
        self._wanted = max(self._wanted, up_to)
        self._wake.set()

    async def _read(self, read, *args, **kwargs):
        """A stream's read (`read`: an Outbox method): request work, on the worker threads."""
        work = functools.partial(read, self.outbox, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def _follow(self, read, *args, **kwargs):
        """The hub's own read, on its own thread and connection."""
        work = functools.partial(read, self.follower_outbox, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.follower, work)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Start at the head: history before it is served from the database.
        while True:
            try:
                self.last = await self._follow(Outbox.last_sequence)
                break
            except Exception as error:  # noqa: BLE001 - the database may be away; retry
                log.warning("event hub cannot read the outbox: %s", error)
                await asyncio.sleep(self.fallback_poll_s)
        self._following = True
        for parked in self._waiting:  # streams that opened before the head was known
            parked.wake.set()
        while True:
            self._wanted = 0
            try:
                await self._catch_up()
            except Exception as error:  # noqa: BLE001 - the database may be away; retry
                log.warning("event hub cannot read the outbox: %s", error)
                self._wanted = 0  # the next wake or tick retries, not a busy loop
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
            # that races a wake-up, leaving the task running through shutdown.
            try:
                async with asyncio.timeout(self.fallback_poll_s):
                    # The local sequencer and the LISTEN connection both announce a
                    # numbering: the second finds its events already read.
                    while self._wanted <= self.last:
                        self._wake.clear()
                        await self._wake.wait()
            except TimeoutError:
                pass

    def _park(self, parked: _Subscriber) -> None:
        self._waiting.add(parked)
        self._filed.setdefault(parked.key, set()).add(parked)

    def _unpark(self, parked: _Subscriber) -> None:
        self._waiting.discard(parked)
        filed = self._filed.get(parked.key)
        if filed is not None:
            filed.discard(parked)
            if not filed:
                del self._filed[parked.key]

    def _announce(self, fresh: list[Event] = ()) -> None:
        """Wakes the parked streams that `fresh` has something for, found through
        the loan and customer of each event: with a thousand streams open, a
        payment costs the few that asked for it, not a look at every stream.

        A woken stream resumes just before the first event that matched it: every
        event between its cursor and that one was announced before, matched
        nothing, and need not be looked at again. A stream left parked has, by the
        same token, looked at everything up to `last`."""
        if self.closed:
            for parked in self._waiting:
                parked.wake.set()
            return
        broad = self._filed.get(None, ())
        for event in fresh:
            for filed in (
                self._filed.get(("loan", event.loan_id), ()),
                self._filed.get(("customer", event.customer_id), ()),
                broad,
            ):
                for parked in filed:
                    if (
                        not parked.wake.is_set()
                        and event.sequence > parked.cursor
                        and parked.only.matches(event)
                    ):
                        parked.cursor = event.sequence - 1
                        parked.wake.set()

    async def _catch_up(self) -> None:
        while True:
            page = await self._follow(Outbox.events_after, self.last, limit=PAGE)
            # Events handed over (`offer`) while the read ran are held already.
            fresh = [event for event in page if event.sequence > self.last]
            if fresh:
                self.ring.extend(fresh)
                self.last = fresh[-1].sequence
                self._announce(fresh)
            if len(page) < PAGE:
                return

    # Serving streams

    def _from_ring(self, cursor: int) -> list[Event] | None:
        """Events after `cursor` from memory, or None when the ring no longer holds them."""
        if not self.ring or self.ring[0].sequence > cursor + 1:
            return None
        start = cursor + 1 - self.ring[0].sequence  # sequences have no gaps
        return [self.ring[i] for i in range(start, min(start + PAGE, len(self.ring)))]

    async def subscribe(
        self, after_sequence: int, only: EventFilter, heartbeat_s: float
    ) -> AsyncIterator[Event | Heartbeat]:
        """Matching events after `after_sequence` in order, then live ones; a
        Heartbeat whenever none came for `heartbeat_s` seconds."""
        if after_sequence > self.last:
            newest = await self._read(Outbox.last_sequence)
            if after_sequence > newest:
                # A cursor from another database (or one restored from an older
                # backup): following it would silently skip real events.
                raise OutOfRange(
                    f"after_sequence {after_sequence} is past the newest event "
                    f"({newest}); resume from a sequence this service gave you"
                )
        cursor = after_sequence
        self.subscribers += 1
        try:
            while True:
                if self.closed:
                    raise HubClosed
                if cursor < self.last:
                    head = self.last
                    batch = self._from_ring(cursor)
                    if batch is None:
                        batch = await self._read(
                            Outbox.events_after, cursor, limit=PAGE, up_to=head, only=only
                        )
                        # Fewer than a page: nothing else matches up to head.
                        cursor = head if len(batch) < PAGE else batch[-1].sequence
                    else:
                        cursor = batch[-1].sequence
                    for event in batch:
                        if only.matches(event):
                            yield event
                    continue
                parked = _Subscriber(only, cursor)
                self._park(parked)
                try:
                    async with asyncio.timeout(heartbeat_s):
                        await parked.wake.wait()
                except TimeoutError:
                    pass
                finally:
                    self._unpark(parked)
                if parked.wake.is_set():  # woken, even if the timeout fired too
                    cursor = parked.cursor
                else:
                    # Nothing up to the head matched while it was parked (_announce).
                    cursor = max(parked.cursor, self.last if self._following else 0)
                    yield Heartbeat(cursor)
        finally:
            self.subscribers -= 1
