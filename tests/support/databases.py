"""Test databases: an SQLite file, or a PostgreSQL database of its own per test.

PostgreSQL databases are cloned from a template migrated once per run, and
dropped afterwards. Where no PostgreSQL answers, PostgreSQL tests skip with
the reason, except under CI (CI=true), where they fail: CI always has one.
"""

from __future__ import annotations

import os
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
    """Creates databases cloned from one migrated template; drops them all at the end."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.template = f"lb_test_{self.run_id}_template"
        self._created: list[str] = []
        self._execute(f'CREATE DATABASE "{self.template}"')
        self._created.append(self.template)
        engine = make_engine(url_for(self.template), pool_size=1)
        upgrade(engine)
        engine.dispose()

    def create(self, migrated: bool = True) -> str:
        name = f"lb_test_{self.run_id}_{uuid.uuid4().hex[:8]}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        self._execute(f'CREATE DATABASE "{name}"{template}')
        self._created.append(name)
        return url_for(name)

    def recreate(self, url: str) -> None:
        """Creates again, migrated and empty, a database that was dropped."""
        self._execute(f'CREATE DATABASE "{make_url(url).database}" TEMPLATE "{self.template}"')

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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
        for name in list(reversed(self._created)):
            self.drop(url_for(name))


@contextmanager
def sqlite_url(directory, migrated: bool = True) -> Iterator[str]:
    url = f"sqlite:///{directory}/loanbilling-{uuid.uuid4().hex[:8]}.db"
    if migrated:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    yield url
