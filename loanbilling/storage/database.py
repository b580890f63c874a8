"""The engine and transactions, with the per-dialect settings that make them safe.

PostgreSQL: pools of a fixed size, short connect and statement timeouts so that
an outage fails fast; with psycopg 3, a second kind of engine whose calls wait
for the database on the event loop instead of on a worker thread.
SQLite (the no-setup default): WAL, a busy timeout, and BEGIN IMMEDIATE for
write transactions so that concurrent payments serialise instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg2
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import psycopg2 as psycopg2_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

WRITE_OPTION = "loanbilling_write"


def make_engine(
    url: str,
    *,
    pool_size: int = 8,
    connect_timeout_s: int = 3,
    statement_timeout_ms: int = 10_000,
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            # psycopg 3: it prepares the statements a connection runs again and
            # again (docs/benchmarks.md: half of PostgreSQL's CPU per payment).
            # postgresql+psycopg2://... still picks psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
            cache_long_statements()
        return create_engine(
            parsed, **_postgresql_options(pool_size, connect_timeout_s, statement_timeout_ms)
        )
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///PATH or postgresql://..."
    )


def make_loop_engine(
    url: str,
    *,
    pool_size: int = 8,
    connect_timeout_s: int = 3,
    statement_timeout_ms: int = 10_000,
) -> AsyncEngine | None:
    """PostgreSQL through psycopg 3: a pool whose connections wait for the
    database on the event loop, for calls run by `run_on_loop`. None for SQLite
    and psycopg2, which can only block: their calls stay on worker threads.

    A call on the loop costs no hand-off to a thread and no fight for the GIL
    between the loop and the workers: 20-30 % less server CPU per read
    (docs/benchmarks.md, "Performance, round six")."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.drivername not in (
        "postgresql",
        "postgresql+psycopg",
    ):
        return None
    cache_long_statements()
    return create_async_engine(
        parsed.set(drivername="postgresql+psycopg_async"),
        **_postgresql_options(pool_size, connect_timeout_s, statement_timeout_ms),
    )


async def run_on_loop(fn, /, **kwargs):
    """fn(**kwargs) on the running event loop, for a `make_loop_engine` engine's
    `sync_engine`: the code stays synchronous, and each of its round trips to the
    database lets the loop serve other calls meanwhile (SQLAlchemy's asyncio
    bridge: the call runs in a greenlet that yields at every driver wait).
    Context variables (the request id) go along. Only for short calls: its
    Python work holds the loop, so bulk work stays on threads."""
    return await greenlet_spawn(fn, **kwargs)


def _postgresql_options(
    pool_size: int, connect_timeout_s: int, statement_timeout_ms: int
) -> dict[str, object]:
    return {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": connect_timeout_s,
        # No ping before every checkout (a round trip per call): a connection
        # found dead fails its call with UNAVAILABLE and the whole pool is
        # refreshed, which the outage tests exercise.
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": connect_timeout_s,
            "options": f"-c statement_timeout={statement_timeout_ms}",
            "application_name": "loanbilling",
            # TCP keepalives notice a dead server instead of hanging on it.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 3,
            "keepalives_count": 3,
        },
    }


# psycopg 3 rewrites a statement's %(name)s placeholders into $1, $2, ... on
# every execute, and memoizes the rewrite only for statements under 4,096
# characters and 50 parameters (psycopg._queries). A payment's one statement has
# ~80 parameters: rewriting it anew cost 0.27 ms of the server's CPU per payment,
# a seventh of it (docs/benchmarks.md, "Performance, round three"). The service
# runs a fixed few statements, so the memo (an LRU of 128) holds them all.
CACHED_STATEMENT_LENGTH = 32_768
CACHED_STATEMENT_PARAMS = 512


def cache_long_statements() -> None:
    """Lets psycopg 3 memoize the placeholders of our long statements too. Its
    limits are module settings it reads on every execute; should a release drop
    them, this sets nothing that is read, and tests/integration/test_driver.py
    fails instead of the service slowing down unnoticed."""
    from psycopg import _queries

    _queries.MAX_CACHED_STATEMENT_LENGTH = max(
        _queries.MAX_CACHED_STATEMENT_LENGTH, CACHED_STATEMENT_LENGTH
    )
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(
        _queries.MAX_CACHED_STATEMENT_PARAMS, CACHED_STATEMENT_PARAMS
    )


def dedicated_connect_args(engine: Engine) -> dict[str, object]:
    """The engine's URL as psycopg2.connect keywords (host, dbname, user, ...), for
    the connections of their own (LISTEN, the leader lock) that psycopg2 opens
    whatever driver the pool uses."""
    _, kwargs = psycopg2_dialect.dialect().create_connect_args(engine.url)
    return kwargs


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged payment survives a crash
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front: two payments on one
        # loan then queue instead of both reading the same balance.
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises.

    Reads on PostgreSQL run in autocommit instead: most are one statement, and
    BEGIN/COMMIT would triple their round trips. Reads of several statements stay
    consistent without a transaction because what they combine is history: a
    read of the past counts payments dated on or before a date that is already
    behind the loan's latest payment, and no later payment can be dated there.
    """
    if not write and is_postgresql(engine):
        with autocommit(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:
        if write:
            conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose statements all see one snapshot: for reads
    that combine present state from several statements (reconciling the books),
    where a write committing in between would show a difference that is not
    there. PostgreSQL: REPEATABLE READ; SQLite: a read transaction (WAL)."""
    with engine.connect() as conn, conn.begin():
        if is_postgresql(engine):  # before any query of the transaction
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield conn


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """PostgreSQL: a connection on which every statement commits as it returns.

    The driver's own flag, set and cleared here, rather than SQLAlchemy's
    isolation_level option: SQLAlchemy undoes that option as the connection goes
    back to the pool, and when the connection died meanwhile the undo raises
    before the pool takes it back, so the pool loses the slot for good
    (SQLAlchemy 2.1; tests/integration/test_storage.py has the case).
    """
    with engine.connect() as conn:
        # The DB-API connection, not the driver's own: on a loop engine it is
        # SQLAlchemy's adapter, whose setter awaits psycopg's set_autocommit().
        driver = conn.connection.dbapi_connection
        driver.autocommit = True
        try:
            yield conn
        finally:
            try:
                if driver.closed:
                    raise psycopg.InterfaceError("connection already closed")
                driver.autocommit = False
            except (psycopg.Error, psycopg2.Error):
                conn.invalidate()  # the pool replaces it


def in_transaction(engine: Engine, fn, /, *args, write: bool = False, **kwargs):
    """fn(conn, *args, **kwargs) in one transaction: for handing to a worker thread."""
    with transaction(engine, write=write) as conn:
        return fn(conn, *args, **kwargs)


def ping(engine: Engine) -> None:
    """Raises when the database cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
