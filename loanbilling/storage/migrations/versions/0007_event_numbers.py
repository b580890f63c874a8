"""event numbers apart: the outbox's rows are never rewritten

Moves each event's number out of `events` into `event_numbers` (sequence,
event_id), and its "not numbered yet" mark into `pending_events`, so that the
numbering inserts a narrow row instead of rewriting the event with its five
indexes. Every number and every pending event carries over as it was.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNSEQUENCED = "sequence IS NULL"


def upgrade() -> None:
    op.create_table(
        "event_numbers",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_numbers_event_id_events")
        ),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_event_numbers")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_numbers_event_id")),
    )
    op.create_table(
        "pending_events",
        sa.Column("event_id", ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_pending_events")),
    )
    op.execute(
        "INSERT INTO event_numbers (sequence, event_id) "
        "SELECT sequence, id FROM events WHERE sequence IS NOT NULL"
    )
    op.execute(f"INSERT INTO pending_events (event_id) SELECT id FROM events WHERE {UNSEQUENCED}")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_unsequenced_id",
            postgresql_where=sa.text(UNSEQUENCED),
            sqlite_where=sa.text(UNSEQUENCED),
        )
        batch_op.drop_index("ix_events_loan_id_sequence")
        batch_op.drop_index("ix_events_customer_id_sequence")
        batch_op.drop_constraint("uq_events_sequence", type_="unique")
        batch_op.drop_column("sequence")
        batch_op.create_index(batch_op.f("ix_events_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_customer_id"))
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE events SET sequence = "
        "(SELECT sequence FROM event_numbers WHERE event_numbers.event_id = events.id)"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_events_sequence", ["sequence"])
        batch_op.create_index(
            "ix_events_customer_id_sequence", ["customer_id", "sequence"], unique=False
        )
        batch_op.create_index("ix_events_loan_id_sequence", ["loan_id", "sequence"], unique=False)
        batch_op.create_index(
            "ix_events_unsequenced_id",
            ["id"],
            unique=False,
            postgresql_where=sa.text(UNSEQUENCED),
            sqlite_where=sa.text(UNSEQUENCED),
        )
    op.drop_table("pending_events")
    op.drop_table("event_numbers")
