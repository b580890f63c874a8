"""rules v2: reversals, write-offs and recoveries; events keyed by history version

Payments gain their reversal (date, reason, the request's key, and the loan's
outstanding and status right after it), all NULL for the existing ones, which
are live. Loans gain their write-off (NULL: none is) and a history version,
bumped by every reversal and recovery; events carry the version they were
written in, and are unique per (loan, kind, week, version) instead of
(loan, kind, week): after a reversal the same installment can be settled,
missed or turn the loan delinquent again. Every existing loan and event is in
version 0, so every row reads the same afterwards. The sweep's partial index
leaves written-off loans out, as it leaves out paid ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_SWEPT = "status <> 'PAID'"
SWEPT = "status <> 'PAID' AND status <> 'WRITTEN_OFF'"


def upgrade() -> None:
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("history_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("write_off_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("write_off_reason", sa.String(500), nullable=True))
        batch_op.add_column(
            sa.Column("written_off_principal_amount", sa.BigInteger(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("written_off_interest_amount", sa.BigInteger(), nullable=True)
        )
        batch_op.add_column(sa.Column("write_off_key", sa.String(128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_loans_write_off_key"), ["write_off_key"])
        batch_op.drop_index(
            "ix_loans_unpaid_id",
            postgresql_where=sa.text(OLD_SWEPT),
            sqlite_where=sa.text(OLD_SWEPT),
        )
        batch_op.create_index(
            "ix_loans_swept_id",
            ["id"],
            unique=False,
            postgresql_where=sa.text(SWEPT),
            sqlite_where=sa.text(SWEPT),
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reversal_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("reversal_reason", sa.String(500), nullable=True))
        batch_op.add_column(sa.Column("reversal_key", sa.String(128), nullable=True))
        batch_op.add_column(
            sa.Column("reversal_outstanding_after", sa.BigInteger(), nullable=True)
        )
        batch_op.add_column(sa.Column("reversal_status_after", sa.String(16), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_reversal_key"), ["reversal_key"]
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("history_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.drop_constraint("uq_events_loan_id_kind_week_number", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_events_loan_id_kind_week_number_history_version"),
            ["loan_id", "kind", "week_number", "history_version"],
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(
            "uq_events_loan_id_kind_week_number_history_version", type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_events_loan_id_kind_week_number", ["loan_id", "kind", "week_number"]
        )
        batch_op.drop_column("history_version")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_payments_reversal_key", type_="unique")
        for column in (
            "reversal_status_after",
            "reversal_outstanding_after",
            "reversal_key",
            "reversal_reason",
            "reversal_date",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_loans_swept_id", postgresql_where=sa.text(SWEPT), sqlite_where=sa.text(SWEPT)
        )
        batch_op.create_index(
            "ix_loans_unpaid_id",
            ["id"],
            unique=False,
            postgresql_where=sa.text(OLD_SWEPT),
            sqlite_where=sa.text(OLD_SWEPT),
        )
        batch_op.drop_constraint("uq_loans_write_off_key", type_="unique")
        for column in (
            "write_off_key",
            "written_off_interest_amount",
            "written_off_principal_amount",
            "write_off_reason",
            "write_off_date",
            "history_version",
        ):
            batch_op.drop_column(column)
