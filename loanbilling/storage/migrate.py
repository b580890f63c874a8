"""Schema migrations with Alembic, driven from code (no alembic.ini to find)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaMismatch(Exception):
    """The database schema is not the one this version of loanbilling knows."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# Any fixed number: concurrent `loanbilling migrate` runs (a Job retried while the
# first still runs, two deploys) take turns instead of colliding on DDL.
MIGRATION_LOCK = 0x6C6F616E_6D696772  # "loanmigr"


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Back to `revision` (tests of an upgrade over data an older release wrote)."""
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, step, revision: str) -> None:
    config = _config()
    with engine.connect() as conn, _foreign_keys_deferred_on_sqlite(conn), conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        step(config, revision)


@contextmanager
def _foreign_keys_deferred_on_sqlite(conn: Connection) -> Iterator[None]:
    """SQLite alters a table by copying it and dropping the old one, which its
    foreign keys forbid while other tables point at it: they are switched off for
    the migration (only outside a transaction is that possible) and checked after."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
        broken = driver.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def check_schema(engine: Engine) -> None:
    """Refuses to serve on a schema that is missing, behind, or newer than this code."""
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:" and not Path(path).exists():
        # Connecting would create an empty file; say what to do instead.
        raise SchemaMismatch(f"there is no database at {path}: run `loanbilling migrate`")
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current is None:
        raise SchemaMismatch("the database has no loanbilling schema: run `loanbilling migrate`")
    if current not in known:
        raise SchemaMismatch(
            f"the database schema is at revision {current}, which this version of loanbilling "
            f"does not know (its newest is {head}): the database was migrated by a newer "
            "release; run that release or a newer one"
        )
    raise SchemaMismatch(
        f"the database schema is at revision {current}, behind {head}: run `loanbilling migrate`"
    )
