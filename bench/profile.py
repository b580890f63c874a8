"""Summarises py-spy `--format raw` profiles (collapsed stacks) of the server.

`python -m bench.profile FILE.txt [...]` prints, for each file: samples per
thread (the event loop, the db_N workers, ...), self time by package (where
the leaf frame is), inclusive time of the steps that matter for a call
(statement building, SQLAlchemy compile and cache keys, the driver, protobuf,
grpc, our code: on the worker threads, or on the loop for calls run there),
and the top frames. `bench --profile DIR` records them with
`py-spy record --format raw --threads` (all active threads) and `--gil` (only
the thread holding the GIL: where the server's one usable core goes).
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

LINE = re.compile(r"^thread \((?P<tid>[^)]*)\): (?P<stack>.*) (?P<count>\d+)$")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")

# Leaf-frame file -> package, first match wins.
PACKAGES = [
    ("sqlalchemy/sql/compiler", "sqlalchemy compile"),
    ("sqlalchemy/sql/cache_key", "sqlalchemy cache key"),
    ("sqlalchemy/sql/", "sqlalchemy statement building"),
    ("sqlalchemy/engine/", "sqlalchemy engine/result"),
    ("sqlalchemy/pool/", "sqlalchemy pool"),
    ("sqlalchemy/", "sqlalchemy other"),
    ("google/protobuf", "protobuf"),
    ("grpc", "grpc (python)"),
    ("asyncio/", "asyncio"),
    ("concurrent/futures", "executor"),
    ("threading", "threading"),
    ("loanbilling/domain", "loanbilling domain"),
    ("loanbilling/", "loanbilling other"),
    ("logging/", "logging"),
]


def _any(frames: list[str], *needles: str) -> bool:
    return any(needle in frame for frame in frames for needle in needles)


def category(thread: str, frames: list[str]) -> str:
    """One exclusive bucket per sample: where the time of a call goes."""
    kind = _thread_kind(thread)
    if kind == "db worker threads":
        return _database_work("worker", frames) or "worker: executor/threading"
    if kind == "event loop (MainThread)" and not _any(frames, "loanbilling/events/"):
        # Calls run on the loop (storage.database.run_on_loop): the same steps, in
        # greenlets, and psycopg's coroutines stepped from uvloop's C code.
        work = _database_work("loop, calls' database work", frames)
        if work is not None:
            return work
    return _outside_calls(kind, frames)


# A call's database work, step by step: the first rule with a needle among a
# sample's frames names its step. Inside SQLAlchemy's execute:
_ASYNC_WAIT = ("wait_async", "AsyncConnection.wait")
EXECUTE_STEPS = [
    (("Compiled.__init__", "SQLCompiler.__init__"), "SQLAlchemy compile (cache miss)"),
    (("_compile_w_cache",), "SQLAlchemy cache key + compiled-cache lookup"),
    (_ASYNC_WAIT, "psycopg async wait (add_reader, Event)"),
    (("do_execute ", "do_executemany ", "cursor.execute", "Cursor.execute"), "driver execute"),
    (
        ("construct_params", "_process_parameters", "process_bind", "_bind_"),
        "SQLAlchemy bind parameters",
    ),
    (("CursorResult", "ResultMetaData", "Result.", "_fetch", "Row."), "SQLAlchemy result/rows"),
]
# Outside it:
OTHER_STEPS = [
    (("do_commit", "do_rollback", "do_begin"), "driver begin/commit"),
    (("Transaction.", "Connection.begin", "TransactionalContext"), "SQLAlchemy begin/commit"),
    (("do_ping", "_do_ping"), "pool pre-ping"),
    (("autocommit (loanbilling/storage/database.py", "set_autocommit"), "autocommit on and off"),
    (
        ("Engine.connect", "Connection.__init__", "Connection.close", "sqlalchemy/pool/"),
        "pool checkout/checkin",
    ),
    (_ASYNC_WAIT, "psycopg async wait (add_reader, Event)"),
    (("psycopg/",), "driver (psycopg)"),
    (("greenlet_spawn", "await_ (sqlalchemy"), "greenlet switches"),
    (("loanbilling/storage/",), "building statements (select()/insert()/update())"),
    (("loanbilling/domain/",), "domain rules"),
    (("loanbilling/services/",), "services (other)"),
]


def _database_work(where: str, frames: list[str]) -> str | None:
    """The step of a call's database work a sample is in, named for `where` it runs."""
    if _any(frames, "Connection.execute ", "Connection._execute_"):
        step = _first(EXECUTE_STEPS, frames) or "SQLAlchemy execute overhead (other)"
    else:
        step = _first(OTHER_STEPS, frames)
    return None if step is None else f"{where}: {step}"


def _first(rules: list[tuple[tuple[str, ...], str]], frames: list[str]) -> str | None:
    return next((step for needles, step in rules if _any(frames, *needles)), None)


def _outside_calls(kind: str, frames: list[str]) -> str:
    if kind == "event loop (MainThread)":
        if _any(frames, "loanbilling/api/convert.py", "loanbilling/contract/", "google/protobuf"):
            return "loop: protobuf conversions (api/convert.py, contract/)"
        if _any(frames, "status_for", "status_of", "abort_with_status", "grpc_status"):
            return "loop: error mapping"
        if _any(
            frames,
            "run_in_executor",
            "ThreadPoolExecutor.submit",
            "wrap_future",
            "_chain_future",
            "_copy_future_state",
            "_call_set_state",
        ):
            return "loop: run_in_executor hand-off"
        if _any(frames, "loanbilling/events/"):
            return "loop: event hub/listener"
        if _any(frames, "loanbilling/api/"):
            return "loop: servicer code (api/)"
        if _any(frames, "cygrpc", "grpc/_cython", "libgrpc", "grpc_core", "grpc_"):
            return "loop: grpc (Cython/C core)"
        if frames and frames[-1].startswith("Handle._run (asyncio/events.py:80)"):
            return "loop: grpc (Cython/C core, frames not visible)"
        if frames and frames[-1].startswith("Runner.run (asyncio/runners.py"):
            # uvloop runs callbacks from C: its own work and grpc's show no frame.
            return "loop: uvloop and grpc (C, frames not visible)"
        if _any(frames, "select (selectors.py", "epoll"):
            return "loop: epoll"
        return "loop: asyncio machinery"
    if kind == "sequencer" or _any(frames, "loanbilling/events/"):
        return "sequencer/hub/listener threads"
    return f"other thread: {kind}"


def parse(path: Path) -> list[tuple[str, list[str], int]]:
    samples = []
    for raw in path.read_text().splitlines():
        match = LINE.match(raw)
        if not match:
            continue
        parts = match["stack"].split(";")
        samples.append((parts[0], parts[1:], int(match["count"])))
    return samples


def _thread_kind(name: str) -> str:
    name = name.strip()
    if name.startswith("MainThread"):
        return "event loop (MainThread)"
    if name.startswith("db_"):
        return "db worker threads"
    return re.sub(r"_\d+$", "", name) or "other"


def _package(frame: str) -> str:
    match = FRAME.match(frame)
    file = match["file"] if match else frame
    for needle, package in PACKAGES:
        if needle in file:
            return package
    if match and not match["file"]:
        return "native/unknown"
    return "other python"


def summarize(path: Path, top: int = 25, *, calls: float = 0, rate: float = 0) -> str:
    """`calls` made while py-spy sampled at `rate` Hz: adds milliseconds per call."""
    samples = parse(path)
    total = sum(count for _, _, count in samples) or 1
    threads: collections.Counter = collections.Counter()
    packages: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    buckets: collections.Counter = collections.Counter()
    for thread, frames, count in samples:
        threads[_thread_kind(thread)] += count
        leaf = frames[-1] if frames else "(no frame)"
        packages[_package(leaf)] += count
        leaves[leaf] += count
        buckets[category(thread, frames)] += count

    def pct(n: int) -> str:
        text = f"{100 * n / total:5.1f} %"
        if calls and rate:
            text += f"  {n / rate / calls * 1000:6.3f} ms/call"
        return text

    out = [f"== {path.name}: {total} samples"]
    if calls and rate:
        out[0] += (
            f" at {rate:g} Hz over {calls:,.0f} calls: {total / rate / calls * 1000:.3f} ms/call"
        )
    out.append("-- by thread")
    out += [f"  {pct(n)}  {name}" for name, n in threads.most_common()]
    out.append("-- self time by package (leaf frame)")
    out += [f"  {pct(n)}  {name}" for name, n in packages.most_common()]
    out.append("-- where the time goes (each sample in one bucket)")
    out += [f"  {pct(n)}  {name}" for name, n in sorted(buckets.items())]
    out.append(f"-- top {top} leaf frames")
    out += [f"  {pct(n)}  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--calls", type=float, default=0, help="calls made while sampling")
    parser.add_argument("--rate", type=float, default=0, help="py-spy sampling rate (Hz)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.files:
        print(summarize(path, args.top, calls=args.calls, rate=args.rate))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
