"""Blocking database work off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import Executor


async def run_blocking(executor: Executor, fn, /, **kwargs):
    """Runs fn(**kwargs) on a worker thread. The context goes along, so that the
    worker's log lines carry the request id."""
    work = functools.partial(contextvars.copy_context().run, fn, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, work)
