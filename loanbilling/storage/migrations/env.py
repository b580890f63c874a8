"""Alembic environment: runs on the connection handed over by loanbilling.storage.migrate."""

from alembic import context

from loanbilling.storage.tables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; the same migrations serve both databases.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
