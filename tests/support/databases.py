"""Test databases: an SQLite file, or a PostgreSQL database of its own per test.

PostgreSQL databases are cloned from a template migrated once per run, and
dropped afterwards. Where no PostgreSQL answers, PostgreSQL tests skip with
the reason, except under CI (CI=true), where they fail: CI always has one.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from loanbilling.storage.database import make_engine
from loanbilling.storage.migrate import upgrade

ADMIN_URL = os.environ.get(
    "LOANBILLING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection():
    url = make_url(ADMIN_URL)
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=3,
    )
    conn.autocommit = True
    return conn


def postgres_unavailable_reason() -> str | None:
    try:
        _admin_connection().close()
    except psycopg2.OperationalError as error:
        return f"no PostgreSQL at {ADMIN_URL} ({str(error).strip().splitlines()[0]})"
    return None


def require_postgres() -> None:
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide one")
    pytest.skip(reason)


def url_for(database: str) -> str:
    return make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)


class PostgresDatabases:
    """Creates databases cloned from one migrated template; drops them all at the end.

    A clone takes 0.3-0.5 s (CREATE DATABASE writes the template to the WAL and
    waits for its flush), as long as a test itself: `MAKERS` threads keep up to
    `AHEAD` clones ready and drop released ones, so that tests do not wait for
    either (clones made side by side take hardly longer than one: most of a clone
    is the wait for the flush). Each test still gets a database nobody else has used."""

    AHEAD = 3
    MAKERS = 3

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.template = f"lb_test_{self.run_id}_template"
        self._created: list[str] = []
        self._created_lock = threading.Lock()  # the tests' thread and the makers
        self._execute(f'CREATE DATABASE "{self.template}"')
        self._created.append(self.template)
        engine = make_engine(url_for(self.template), pool_size=1)
        upgrade(engine)
        engine.dispose()
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._released: queue.Queue[str] = queue.Queue()
        self._closing = threading.Event()
        self._makers = [
            threading.Thread(target=self._work, name=f"test-databases-{n}", daemon=True)
            for n in range(self.MAKERS)
        ]
        for maker in self._makers:
            maker.start()

    def create(self, migrated: bool = True) -> str:
        if not migrated:
            return url_for(self._create(template=None))
        made = self._ready.get(timeout=60)
        if isinstance(made, BaseException):
            raise made
        return url_for(made)

    def _create(self, template: str | None) -> str:
        name = f"lb_test_{self.run_id}_{uuid.uuid4().hex[:8]}"
        with self._created_lock:  # first: a failed CREATE is dropped (IF EXISTS) at the end
            self._created.append(name)
        self._execute(_create_sql(name, template))
        return name

    def _work(self) -> None:
        """Makes the next clone ahead; while it waits for a taker, drops what tests
        released."""
        while not self._closing.is_set():
            try:
                made: str | BaseException = self._create(template=self.template)
            except Exception as error:  # noqa: BLE001 - the test asking for it raises it
                made = error
            while not self._closing.is_set():
                self._drop_released()
                try:
                    self._ready.put(made, timeout=0.05)
                    break
                except queue.Full:
                    pass

    def _drop_released(self) -> None:
        while True:
            try:
                name = self._released.get_nowait()
            except queue.Empty:
                return
            self.drop(url_for(name))

    def recreate(self, url: str) -> None:
        """Creates again, migrated and empty, a database that was dropped."""
        self._execute(_create_sql(make_url(url).database, self.template))

    def release(self, url: str) -> None:
        """A test is done with `url`: dropped soon, off the test's time."""
        self._released.put(make_url(url).database)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with self._created_lock:
            if name in self._created:
                self._created.remove(name)

    @staticmethod
    def _execute(statement: str) -> None:
        """CREATE/DROP DATABASE refuse to run in a transaction: autocommit, no `with conn`."""
        conn = _admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def drop_all(self) -> None:
        self._closing.set()
        for maker in self._makers:
            maker.join(60)
        with self._created_lock:
            left = list(reversed(self._created))
        for name in left:
            self.drop(url_for(name))


def _create_sql(name: str, template: str | None) -> str:
    return f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")


@contextmanager
def sqlite_url(directory, migrated: bool = True) -> Iterator[str]:
    url = f"sqlite:///{directory}/loanbilling-{uuid.uuid4().hex[:8]}.db"
    if migrated:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    yield url
