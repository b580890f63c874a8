"""Leadership among replicas: one of them runs a singleton job (the broker relay).

On PostgreSQL, leadership is a session advisory lock held on a connection of
the leader's own; on SQLite a single process serves the database, so it leads.
Blocking: call these from a worker thread. Driver errors come out as
StorageUnavailable.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import psycopg2
from sqlalchemy import Engine

from loanbilling.domain.errors import StorageUnavailable
from loanbilling.storage.database import dedicated_connect_args, is_postgresql

# The leader's own connection: fail fast, and notice a dead server (hence a
# lost lock) within seconds rather than at TCP's leisure.
LOCK_CONNECT_ARGS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class LeadershipLost(StorageUnavailable):
    """The session that held the lock is gone, and the lock with it."""


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """True when this process leads (now, or already)."""

    def check(self) -> None:
        """Raises LeadershipLost when the lock may have been lost."""

    def release(self) -> None: ...


class Alone:
    """SQLite: one process serves the database, so it leads."""

    def try_acquire(self) -> bool:
        return True

    def check(self) -> None:
        pass

    def release(self) -> None:
        pass


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a dedicated autocommit connection.
    The lock lasts as long as the session, so checking that the connection
    still answers checks the lock."""

    def __init__(self, engine: Engine, key: int, *, application_name: str) -> None:
        options = {
            **LOCK_CONNECT_ARGS,
            "application_name": application_name,
            **dedicated_connect_args(engine),
        }
        self._connect = lambda: psycopg2.connect(**options)
        self.key = key
        self._conn = None

    def try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._connect()
                self._conn.autocommit = True
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                return bool(cursor.fetchone()[0])
        except psycopg2.Error as error:
            self.release()
            raise StorageUnavailable(str(error)) from error

    def check(self) -> None:
        try:
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        except psycopg2.Error as error:
            raise LeadershipLost(f"lost the leader's database session: {error}") from error

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ending the session releases the lock


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job's name."""
    digest = hashlib.blake2b(f"loanbilling:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def leader_lock(engine: Engine, name: str, *, application_name: str) -> LeaderLock:
    """The lock that elects the one replica running job `name`."""
    if is_postgresql(engine):
        return AdvisoryLock(engine, lock_key(name), application_name=application_name)
    return Alone()
