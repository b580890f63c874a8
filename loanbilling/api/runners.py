"""Where a call's database work runs. A servicer is given a `Run`: it calls
`await run(fn, **kwargs)` and gets fn(**kwargs)'s result, whichever of the two
the composition root (loanbilling.server) chose:

- on the event loop (PostgreSQL with psycopg 3: storage's `run_on_loop`), each
  round trip to the database letting other calls go on meanwhile;
- on a worker thread (`on_threads`): SQLite and psycopg2, whose drivers block,
  and bulk work (sweeps, verifying the books) whose Python must not hold the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

Run = Callable[..., Awaitable[Any]]


def on_threads(executor: Executor) -> Run:
    """Runs each call on one of `executor`'s threads. The context goes along, so
    that the worker's log lines carry the request id."""

    async def run(fn, /, **kwargs):
        work = functools.partial(contextvars.copy_context().run, fn, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, work)

    return run
