"""PostgreSQL NOTIFY of numbered events: the channel, the payload, and the
dedicated connection that LISTENs for them.

A numbering notifies "<newest sequence> <origin>" on NOTIFY_CHANNEL (the
statement is in loanbilling.storage.numbering); the origin names the
sequencer that numbered, so that a server can skip its own numberings.
NOTIFY only wakes readers: the outbox table stays the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from sqlalchemy import Engine

from loanbilling.domain.errors import StorageUnavailable
from loanbilling.storage.database import dedicated_connect_args

NOTIFY_CHANNEL = "loanbilling_events"
ANONYMOUS = "-"  # the origin of a numbering nobody needs to recognise
DEDICATED_CONNECT_ARGS = {
    "connect_timeout": 3,
    "application_name": "loanbilling-listen",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One NOTIFY: the newest sequence numbered (None: unknown) and by whom."""

    sequence: int | None
    origin: str | None


def parse_notice(payload: str) -> Notice:
    head, _, origin = payload.partition(" ")
    try:
        sequence: int | None = int(head)
    except ValueError:
        sequence = None
    return Notice(sequence, origin or None)


class ListenConnection:
    """An autocommit connection of its own, LISTENing on NOTIFY_CHANNEL. Its
    `fileno` turns readable when notices may have arrived; `receive` collects
    them without blocking. Timeouts and keepalives, so that a half-open
    connection is noticed. Driver errors come out as StorageUnavailable."""

    def __init__(self, engine: Engine, channel: str = NOTIFY_CHANNEL) -> None:
        """Blocking: connects and starts listening."""
        kwargs = dedicated_connect_args(engine)
        try:
            self._conn = psycopg2.connect(**{**DEDICATED_CONNECT_ARGS, **kwargs})
        except psycopg2.Error as error:
            raise StorageUnavailable(f"LISTEN {channel}: {error}") from error
        try:
            self._conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with self._conn.cursor() as cursor:
                cursor.execute(f"LISTEN {channel}")
        except psycopg2.Error as error:
            self._conn.close()
            raise StorageUnavailable(f"LISTEN {channel}: {error}") from error
        self.channel = channel

    def fileno(self) -> int:
        return self._conn.fileno()

    def receive(self) -> list[Notice]:
        """The notices that arrived, oldest first; raises StorageUnavailable when
        the connection failed."""
        try:
            self._conn.poll()
        except psycopg2.Error as error:
            raise StorageUnavailable(f"LISTEN {self.channel}: {error}") from error
        if not self._conn.notifies:
            return []
        payloads = [n.payload for n in self._conn.notifies]
        self._conn.notifies.clear()
        return [parse_notice(payload) for payload in payloads]

    def close(self) -> None:
        self._conn.close()
