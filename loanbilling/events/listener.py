"""PostgreSQL LISTEN on a dedicated connection, read without blocking the event loop.

NOTIFY only wakes the hub; the outbox table stays the truth, and the hub's
fallback tick covers the time the listener is reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg2
import psycopg2.extensions
from sqlalchemy import Engine

log = logging.getLogger(__name__)
DEDICATED_CONNECT_ARGS = {
    "connect_timeout": 3,
    "application_name": "loanbilling-listen",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


async def listen(
    engine: Engine,
    channel: str,
    on_notify: Callable[[int | None], None],
    *,
    skip_origin: str | None = None,
) -> None:
    """Calls `on_notify` for the NOTIFYs on `channel` (several at once: once) with
    the greatest sequence among their payloads ("<sequence> <origin>"; None when
    one has none), and once with None after every (re)connection. NOTIFYs whose
    origin is `skip_origin` are dropped. Reconnects with backoff."""
    loop = asyncio.get_running_loop()
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    backoff = 0.5
    while True:
        try:
            # Timeouts and keepalives, so that a half-open connection is noticed.
            conn = await loop.run_in_executor(
                None, lambda: psycopg2.connect(*args, **{**DEDICATED_CONNECT_ARGS, **kwargs})
            )
        except psycopg2.Error as error:
            log.warning("LISTEN %s: %s; reconnecting in %.1fs", channel, error, backoff)
        else:
            backoff = 0.5
            try:
                await _listen_on(conn, channel, on_notify, skip_origin)
            except psycopg2.Error as error:
                log.warning("LISTEN %s: %s; reconnecting in %.1fs", channel, error, backoff)
            finally:
                conn.close()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def _listen_on(
    conn, channel: str, on_notify: Callable[[int | None], None], skip_origin: str | None
) -> None:
    """Listens on one connection until it fails (raising the driver's error)."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future = loop.create_future()
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with conn.cursor() as cursor:
        cursor.execute(f"LISTEN {channel}")

    def readable() -> None:
        try:
            conn.poll()
        except psycopg2.Error as error:
            if not lost.done():
                lost.set_exception(error)
            return
        if conn.notifies:
            payloads = [n.payload for n in conn.notifies]
            conn.notifies.clear()
            others = [p for p in payloads if skip_origin is None or _origin(p) != skip_origin]
            if others:
                on_notify(_greatest(others))

    fd = conn.fileno()
    loop.add_reader(fd, readable)
    try:
        on_notify(None)  # anything committed while nobody listened
        await lost
    finally:
        loop.remove_reader(fd)


def _greatest(payloads: list[str]) -> int | None:
    """The greatest sequence among the payloads; None if one has none (unknown)."""
    try:
        return max(int(payload.split(" ", 1)[0]) for payload in payloads)
    except ValueError:
        return None


def _origin(payload: str) -> str | None:
    _, _, origin = payload.partition(" ")
    return origin or None
