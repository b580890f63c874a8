"""How far each consumer outside the database (the broker relay) has got:
the last sequence it delivered, in `consumer_cursors`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from loanbilling.storage.database import in_transaction
from loanbilling.storage.errors import translated
from loanbilling.storage.tables import consumer_cursors


def read_cursor(conn: Connection, name: str) -> int:
    """The last sequence the consumer delivered; 0 when it never ran."""
    value = conn.execute(
        select(consumer_cursors.c.last_sequence).where(consumer_cursors.c.name == name)
    ).scalar_one_or_none()
    return value or 0


def advance_cursor(conn: Connection, name: str, sequence: int) -> None:
    """Inserts or moves the cursor forward; never back (a deposed leader may write late)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(consumer_cursors).values(
        name=name, last_sequence=sequence, updated_at=dt.datetime.now(dt.UTC)
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[consumer_cursors.c.name],
            set_={
                "last_sequence": statement.excluded.last_sequence,
                "updated_at": statement.excluded.updated_at,
            },
            where=consumer_cursors.c.last_sequence < statement.excluded.last_sequence,
        )
    )


class ConsumerCursor:
    """One consumer's cursor; each call is a short transaction of its own (blocking)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name

    def read(self) -> int:
        with translated():
            return in_transaction(self.engine, read_cursor, self.name)

    def advance(self, sequence: int) -> None:
        with translated():
            in_transaction(self.engine, advance_cursor, self.name, sequence, write=True)
