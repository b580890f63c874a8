"""Follows PostgreSQL NOTIFY without blocking the event loop.

NOTIFY only wakes the hub; the outbox table stays the truth, and the hub's
fallback tick covers the time the listener is reconnecting. The connection
and the payload are storage's (loanbilling.storage.notifications).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from loanbilling.domain.errors import StorageError
from loanbilling.storage.notifications import ListenConnection, Notice
from loanbilling.storage.outbox import Outbox

log = logging.getLogger(__name__)


async def listen(
    outbox: Outbox,
    on_notify: Callable[[int | None], None],
    *,
    skip_origin: str | None = None,
) -> None:
    """Calls `on_notify` for the numberings announced (several at once: once) with
    the newest sequence among them (None when one is unknown), and once with None
    after every (re)connection. Numberings whose origin is `skip_origin` are
    dropped. Reconnects with backoff."""
    loop = asyncio.get_running_loop()
    backoff = 0.5
    while True:
        try:
            conn = await loop.run_in_executor(None, outbox.listen)
        except StorageError as error:
            log.warning("%s; reconnecting in %.1fs", error, backoff)
        else:
            backoff = 0.5
            try:
                await _listen_on(conn, on_notify, skip_origin)
            except StorageError as error:
                log.warning("%s; reconnecting in %.1fs", error, backoff)
            finally:
                conn.close()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def _listen_on(
    conn: ListenConnection, on_notify: Callable[[int | None], None], skip_origin: str | None
) -> None:
    """Listens on one connection until it fails (raising StorageUnavailable)."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future = loop.create_future()

    def readable() -> None:
        try:
            notices = conn.receive()
        except StorageError as error:
            if not lost.done():
                lost.set_exception(error)
            return
        others = [n for n in notices if skip_origin is None or n.origin != skip_origin]
        if others:
            on_notify(_newest(others))

    fd = conn.fileno()
    loop.add_reader(fd, readable)
    try:
        on_notify(None)  # anything committed while nobody listened
        await lost
    finally:
        loop.remove_reader(fd)


def _newest(notices: list[Notice]) -> int | None:
    """The greatest sequence announced; None if one is unknown (the hub reads)."""
    if any(n.sequence is None for n in notices):
        return None
    return max(n.sequence for n in notices)
