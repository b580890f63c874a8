"""the numbering in one statement: a function that locks, then numbers

PostgreSQL only (SQLite numbers with one writer at a time and needs no lock).
`number_pending_events` takes the row lock of `event_sequence`, then numbers
the pending committed events in a statement of its own, and returns them with
their numbers. A volatile function's statements each take a fresh snapshot
(READ COMMITTED), so the numbering sees what every earlier lock holder
committed: the order of loanbilling.storage.numbering, in one round trip run
in autocommit instead of BEGIN, the lock, the numbering and COMMIT.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The planner cannot know how few events a numbering takes (usually a handful,
# up to max_count), and guessed hundreds: it deleted through a scan of all of
# pending_events and hash-joined a scan of the whole events table, 0.42 ms of
# PostgreSQL's CPU per numbering and growing with the log (docs/benchmarks.md,
# round five). So the pending rows are deleted through `= ANY (ARRAY(...))` on
# their key, and each event is fetched by its key in a LATERAL subquery that
# OFFSET 0 keeps from being flattened back into a join. The NOTIFY payload is
# loanbilling.storage.notifications'.
NUMBER_PENDING_EVENTS = """
CREATE FUNCTION number_pending_events(max_count integer, channel text, origin text)
RETURNS TABLE (numbered_as bigint, numbered_event events)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last bigint;
BEGIN
    SELECT s.last_sequence INTO last FROM event_sequence AS s WHERE s.id = 1 FOR UPDATE;
    RETURN QUERY
    WITH taken AS (
        DELETE FROM pending_events AS p
        WHERE p.event_id = ANY (ARRAY(
            SELECT q.event_id FROM pending_events AS q ORDER BY q.event_id LIMIT max_count
        ))
        RETURNING p.event_id
    ), numbered AS (
        INSERT INTO event_numbers (sequence, event_id)
        SELECT last + row_number() OVER (ORDER BY taken.event_id), taken.event_id FROM taken
        RETURNING event_numbers.sequence, event_numbers.event_id
    ), moved AS (
        UPDATE event_sequence AS s SET last_sequence = (SELECT max(n.sequence) FROM numbered AS n)
        WHERE s.id = 1 AND EXISTS (SELECT FROM numbered)
        RETURNING pg_notify(channel, s.last_sequence::text || ' ' || origin)
    )
    SELECT numbered.sequence, found.event
    FROM numbered
    CROSS JOIN LATERAL (
        SELECT e AS event FROM events AS e WHERE e.id = numbered.event_id OFFSET 0
    ) AS found
    CROSS JOIN moved
    ORDER BY numbered.sequence;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NUMBER_PENDING_EVENTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION number_pending_events(integer, text, text)")
