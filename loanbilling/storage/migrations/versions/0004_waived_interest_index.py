"""the portfolio's waived interest: a partial index on the payoffs that waived any

GetPortfolioSummary sums payments.waived_interest_amount over the payments
dated on or before its date; only payoffs under WAIVE_UNDUE hold a non-zero
amount, so the index holds those rows only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payments_waived_loan_id_payment_date",
            ["loan_id", "payment_date"],
            unique=False,
            postgresql_where=sa.text("waived_interest_amount > 0"),
            sqlite_where=sa.text("waived_interest_amount > 0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_payments_waived_loan_id_payment_date",
            postgresql_where=sa.text("waived_interest_amount > 0"),
            sqlite_where=sa.text("waived_interest_amount > 0"),
        )
