"""Numbers committed outbox events soon after they commit, on a thread of its own.

The numbering itself (the lock, the statement, the NOTIFY) is storage's
(loanbilling.storage.numbering); this decides when to number and whom to tell.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loanbilling.storage.notifications import ANONYMOUS
from loanbilling.storage.numbering import Numbered
from loanbilling.storage.outbox import Outbox

log = logging.getLogger(__name__)


async def run_sequencer(
    outbox: Outbox,
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
    number = functools.partial(outbox.number_all, origin=origin)
    try:
        while True:
            try:
                async with asyncio.timeout(fallback_poll_s):  # not wait_for: see EventHub.run
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            try:
                done = await loop.run_in_executor(worker, number)
                if done.count:
                    numbered(done)
            except Exception as error:  # noqa: BLE001 - the database may be away; retry
                log.warning("sequencer: %s", error)
    finally:
        worker.shutdown(wait=False)
