"""The machine's RabbitMQ for relay tests: reachability, a test queue, a broker outage.

RabbitMQ tests skip with the reason where no broker answers, except under CI
(CI=true), where they fail: CI always has one. The broker is the machine's
own, shared with any other test run: every test declares its own exchange and
queue, and the outage test (which stops the broker's application) takes an
exclusive file lock that the other RabbitMQ tests share, so that two runs on
one machine do not pull the broker from under each other. A run killed during
the outage leaves a marker file; the next one starts the broker's application.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import pytest

AMQP_URL = os.environ.get("LOANBILLING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
LOCK_PATH = "/tmp/loanbilling-test-rabbitmq.lock"
# Present while a test has the broker's application stopped: if that run was killed
# before it could start it again, the next run does.
STOPPED_MARKER = "/tmp/loanbilling-test-rabbitmq.stopped"
T = TypeVar("T")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


async def _probe() -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=3)
    await connection.close()


def rabbitmq_unavailable_reason() -> str | None:
    try:
        asyncio.run(_probe())
    except Exception as error:  # noqa: BLE001 - any failure means no usable broker
        return f"no RabbitMQ at {AMQP_URL} ({type(error).__name__}: {error})"
    return None


def require_rabbitmq() -> None:
    reason = rabbitmq_unavailable_reason()
    if reason is not None and os.path.exists(STOPPED_MARKER):
        _start_broker()  # an earlier run stopped it and died: undo that
        reason = rabbitmq_unavailable_reason()
    if reason is not None:
        _skip_or_fail(reason)


@contextlib.contextmanager
def broker_lock(*, exclusive: bool, timeout_s: float = 120.0) -> Iterator[None]:
    """Shared by the tests that use the broker; exclusive for the one that stops it."""
    with open(LOCK_PATH, "a") as handle:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run held {LOCK_PATH} for {timeout_s:.0f}s")
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# The broker's application: stopped and started again


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60)


def require_rabbitmqctl() -> None:
    if shutil.which("rabbitmqctl") is None:
        _skip_or_fail("rabbitmqctl is not on PATH: cannot stop the broker")
    if os.geteuid() != 0:
        _skip_or_fail("stopping the broker with rabbitmqctl needs root")


def wait_for_broker(timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (reason := rabbitmq_unavailable_reason()) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"RabbitMQ did not come back within {timeout_s:.0f}s: {reason}")
        time.sleep(0.2)


def _start_broker() -> None:
    _rabbitmqctl("start_app")  # returns once booted; a no-op when it runs
    wait_for_broker()
    with contextlib.suppress(FileNotFoundError):
        os.remove(STOPPED_MARKER)


@contextlib.contextmanager
def broker_stopped() -> Iterator[None]:
    """`rabbitmqctl stop_app` (about 1 s), then `start_app` (about 2 s) whatever happens:
    the machine's broker is left running."""
    try:
        with open(STOPPED_MARKER, "w") as marker:
            marker.write(f"{os.getpid()}\n")
        _rabbitmqctl("stop_app")
        yield
    finally:
        _start_broker()


# An event loop in a thread, for the relay and the test queue


class LoopThread:
    """Runs coroutines for synchronous tests; tasks left running are cancelled on close."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        async def create() -> asyncio.Task:
            return asyncio.create_task(coro, name=name)

        return self.call(create())

    def stop_task(self, task: asyncio.Task, timeout: float = 10.0) -> None:
        """Cancels a task and waits for it; re-raises what it died of, if not the cancel."""

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.call(cancel(), timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


# A queue bound to the relay's exchange


@dataclass(frozen=True)
class Received:
    routing_key: str
    body: bytes
    message_id: str | None
    content_type: str | None
    type: str | None
    delivery_mode: int | None
    headers: dict
    redelivered: bool


class Tap:
    """A durable queue of the test's own on a test exchange, read with basic.get.

    Durable, not exclusive nor auto-delete: it must survive the broker's restart
    (a transient queue does not) and the loss of the reading connection. It
    expires on the broker 5 minutes after its last use in case teardown never ran.
    """

    def __init__(self, loop: LoopThread, exchange: str, binding: str) -> None:
        self.loop = loop
        self.exchange = exchange
        self.binding = binding
        self.queue = f"lb-test-{uuid.uuid4().hex[:12]}"

    async def _channel(self, connection):
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            self.queue, durable=True, arguments={"x-expires": 300_000}
        )
        await queue.bind(exchange, self.binding)
        return queue

    def open(self) -> Tap:
        async def declare() -> None:
            async with await aio_pika.connect(AMQP_URL, timeout=5) as connection:
                await self._channel(connection)

        self.loop.call(declare())
        return self

    def take(self, count: int, *, timeout_s: float = 10.0, settle_s: float = 0.3) -> list[Received]:
        """Waits for `count` messages, then `settle_s` more for any extra; returns all.
        Rides out a broker restart: unacknowledged messages come back."""

        async def drain() -> list[Received]:
            got: list[Received] = []
            deadline = asyncio.get_running_loop().time() + timeout_s
            settled_at: float | None = None
            while True:
                now = asyncio.get_running_loop().time()
                if len(got) >= count and settled_at is None:
                    settled_at = now + settle_s
                if now > (settled_at if settled_at is not None else deadline):
                    return got
                try:
                    async with await aio_pika.connect(AMQP_URL, timeout=3) as connection:
                        queue = await self._channel(connection)
                        while True:
                            now = asyncio.get_running_loop().time()
                            if len(got) >= count and settled_at is None:
                                settled_at = now + settle_s
                            if now > (settled_at if settled_at is not None else deadline):
                                return got
                            message = await queue.get(no_ack=False, fail=False, timeout=3)
                            if message is None:
                                await asyncio.sleep(0.05)
                                continue
                            got.append(
                                Received(
                                    routing_key=message.routing_key,
                                    body=message.body,
                                    message_id=message.message_id,
                                    content_type=message.content_type,
                                    type=message.type,
                                    delivery_mode=int(message.delivery_mode),
                                    headers=dict(message.headers),
                                    redelivered=bool(message.redelivered),
                                )
                            )
                            await message.ack()
                except (aio_pika.exceptions.AMQPError, OSError, TimeoutError):
                    await asyncio.sleep(0.2)  # the broker is restarting

        return self.loop.call(drain(), timeout=timeout_s + settle_s + 15)

    def close(self) -> None:
        async def delete() -> None:
            async with await aio_pika.connect(AMQP_URL, timeout=5) as connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.exchange)

        self.loop.call(delete())


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)
