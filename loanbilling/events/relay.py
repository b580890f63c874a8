"""Relays every outbox event to a RabbitMQ topic exchange, at least once.

The relay reads numbered events after its cursor (`consumer_cursors`, row
"amqp-relay") a page at a time, publishes the page with publisher confirms,
and only then advances the cursor, in a short transaction of its own. After
any failure (broker, database, leadership) it drops its connections, backs
off and starts again from the cursor: what the broker confirmed is never sent
again, and what it had not confirmed is sent again. Duplicates can therefore
appear around a failure, never in normal running; consumers deduplicate on
`message_id`, which is the event's sequence.

One relay publishes at a time (loanbilling.storage.leader_lock: on PostgreSQL
a session advisory lock on a connection of the relay's own; on SQLite the one
process leads). The other replicas try to take it every `leader_poll_s`, and a
leader that loses the connection (so the lock) stops before its next page.

Messages: exchange `loanbilling.events` (durable, topic), routing key
`loanbilling.v1.event.<kind>` (e.g. `loanbilling.v1.event.payment_received`),
persistent, body the protobuf `microfin.loanbilling.v1.Event`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange
from yarl import URL

from loanbilling.contract.events import event_to_pb
from loanbilling.domain.events import Event, EventKind
from loanbilling.storage.outbox import Outbox

log = logging.getLogger(__name__)
T = TypeVar("T")

CURSOR_NAME = "amqp-relay"
DEFAULT_EXCHANGE = "loanbilling.events"
ROUTING_KEY_PREFIX = "loanbilling.v1.event."
CONTENT_TYPE = "application/x-protobuf"
MESSAGE_TYPE = "microfin.loanbilling.v1.Event"
APPLICATION_NAME = "loanbilling-amqp-relay"


def routing_key(kind: EventKind) -> str:
    return ROUTING_KEY_PREFIX + kind.value.lower()


def to_message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        event_to_pb(event).SerializeToString(),
        content_type=CONTENT_TYPE,
        type=MESSAGE_TYPE,
        message_id=str(event.sequence),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=event.created_at,
        app_id="loanbilling",
        headers={
            "sequence": event.sequence,
            "kind": event.kind.value,
            "loan_id": event.loan_id,
        },
    )


class AmqpRelay:
    def __init__(
        self,
        outbox: Outbox,
        amqp_url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        name: str = CURSOR_NAME,
        page_size: int = 500,
        tick_s: float = 1.0,
        leader_poll_s: float = 5.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        confirm_timeout_s: float = 30.0,
    ) -> None:
        url = URL(amqp_url)
        if url.scheme not in ("amqp", "amqps") or not url.host:
            raise ValueError(f"not an AMQP URL: {amqp_url!r} (amqp://user:password@host:5672/)")
        self.outbox = outbox
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.name = name
        self.page_size = page_size
        self.tick_s = tick_s
        self.leader_poll_s = leader_poll_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self.where = str(url.with_password(None) if url.password else url)
        # Observable state, for logs and tests.
        self.leading = False
        self.last_confirmed: int | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff = min_backoff_s
        self._connection: AbstractConnection | None = None
        self._lost: str | None = None  # why the broker connection closed, once it has
        self._worker: ThreadPoolExecutor | None = None
        self._cursor = outbox.cursor(name)
        self._lock = outbox.leader_lock(name, application_name=APPLICATION_NAME)

    def wake(self) -> None:
        """Safe from any thread: new events may have been numbered."""
        loop = self._loop
        if loop is None:
            return  # not running yet: it reads from its cursor when it starts
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: the relay has stopped
            pass

    async def run(self) -> None:
        """Relays until cancelled. Outages are logged and retried with backoff."""
        self._loop = asyncio.get_running_loop()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amqp-relay")
        standing_by = False
        try:
            while True:
                try:
                    leader = await self._blocking(self._lock.try_acquire)
                except Exception as error:  # noqa: BLE001 - the database may be away; retry
                    await self._back_off("cannot contend for leadership", error)
                    continue
                if not leader:
                    self._backoff = self.min_backoff_s  # the database answers
                    if not standing_by:
                        log.info("amqp relay: another replica relays; standing by")
                        standing_by = True
                    await asyncio.sleep(self.leader_poll_s)
                    continue
                standing_by = False
                self.leading = True
                failure: Exception = RuntimeError("relaying ended")  # _lead only raises
                try:
                    await self._lead()
                except Exception as error:  # noqa: BLE001 - broker or database outage; retry
                    failure = error
                finally:
                    self.leading = False
                    await self._step_down()
                await self._back_off("stopped relaying", failure)
        finally:
            self._loop = None
            # A standby's session (no lock held) closes on the worker, off the loop.
            self._worker.submit(self._lock.release)
            self._worker.shutdown(wait=False)

    async def _lead(self) -> None:
        """Relays while leader; returns only by raising."""
        self._lost = None
        self._connection = await aio_pika.connect(
            self.amqp_url,
            timeout=self.connect_timeout_s,
            client_properties={"connection_name": APPLICATION_NAME},
        )
        self._connection.close_callbacks.add(self._on_close)
        channel = await self._connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        cursor = await self._blocking(self._cursor.read)
        self.last_confirmed = cursor
        log.info(
            "amqp relay: leading; publishing events after %d to exchange %r at %s",
            cursor,
            self.exchange_name,
            self.where,
        )
        while True:
            await self._blocking(self._lock.check)
            self._raise_if_lost()
            page = await self._blocking(self.outbox.events_after, cursor, limit=self.page_size)
            if page:
                cursor = await self._publish(exchange, page)
            self._backoff = self.min_backoff_s  # relaying: healthy again
            if len(page) == self.page_size:
                continue
            # asyncio.timeout, not wait_for: see EventHub.run.
            try:
                async with asyncio.timeout(self.tick_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _publish(self, exchange: AbstractExchange, page: list[Event]) -> int:
        """Publishes a page, then records the confirmed prefix; returns the new cursor.

        Publishes are pipelined on one channel: aiormq writes them in call order
        (a fair lock around each write), so they reach queues in sequence order."""
        try:
            async with asyncio.timeout(self.confirm_timeout_s):
                results = await asyncio.gather(
                    *(
                        exchange.publish(
                            to_message(event), routing_key(event.kind), mandatory=False
                        )
                        for event in page
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            self._raise_if_lost()
            raise TimeoutError(
                f"the broker confirmed events {page[0].sequence}..{page[-1].sequence} "
                f"not within {self.confirm_timeout_s:.0f}s (blocked by a resource alarm?)"
            ) from None
        failed = next((i for i, r in enumerate(results) if isinstance(r, BaseException)), None)
        confirmed = page if failed is None else page[:failed]
        if confirmed:
            last = confirmed[-1].sequence
            await self._blocking(self._cursor.advance, last)
            self.last_confirmed = last
        if failed is not None:
            self._raise_if_lost()
            raise results[failed]
        return page[-1].sequence

    def _on_close(self, connection, error: BaseException | None = None) -> None:
        if connection is not self._connection:
            return  # one the relay dropped itself
        self._lost = str(error) if error else "closed"
        self.wake()  # the idle loop notices at once

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise ConnectionError(f"lost the broker connection: {self._lost}")

    async def _step_down(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            try:
                async with asyncio.timeout(2.0):
                    await connection.close()
            except Exception as error:  # noqa: BLE001 - it is being dropped anyway
                log.debug("amqp relay: closing the broker connection: %s", error)
        try:
            async with asyncio.timeout(5.0):
                await self._blocking(self._lock.release)
        except Exception as error:  # noqa: BLE001 - a dead session releases the lock too
            log.debug("amqp relay: releasing leadership: %s", error)

    async def _back_off(self, what: str, error: BaseException) -> None:
        delay = self._backoff * random.uniform(0.75, 1.25)
        self._backoff = min(self._backoff * 2, self.max_backoff_s)
        log.warning("amqp relay: %s: %s; retrying in %.1fs", what, _describe(error), delay)
        await asyncio.sleep(delay)

    async def _blocking(self, fn: Callable[..., T], *args, **kwargs) -> T:
        work = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or repr(error)  # driver messages run over lines
    return f"{type(error).__name__}: {text}"
