"""rules v2: the paid amount is the state; per-loan settings; payment splits

Loans gain `paid_amount` (A) and their prepayment and payoff-interest settings
(the defaults, DUE_ONLY and FULL, for existing loans); payments gain the
principal / interest split of their amount, their kind (REGULAR), the interest
a payoff waived (none yet) and the paid amount right after them. Every existing
row is filled from what it already holds, so it reads the same afterwards: a v1
loan's A is the sum of its installments paid, T - outstanding.

The split is J(A after) - J(A before) with J(x) = floor(I * x / T), computed in
Python from the domain: I * x can pass 64 bits, which SQLite would turn into a
float.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from loanbilling.domain.loan import LoanTerms

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    # Server defaults fill the existing rows; they are dropped afterwards, so that
    # every writer names each value.
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "prepayment_policy", sa.String(24), nullable=False, server_default="DUE_ONLY"
            )
        )
        batch_op.add_column(
            sa.Column("payoff_interest", sa.String(16), nullable=False, server_default="FULL")
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("interest_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="REGULAR")
        )
        batch_op.add_column(sa.Column("paid_amount_after", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "waived_interest_amount", sa.BigInteger(), nullable=False, server_default="0"
            )
        )

    op.execute("UPDATE loans SET paid_amount = total_amount - outstanding_amount")
    _split_payments(op.get_bind())

    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.alter_column("paid_amount", nullable=False)
        batch_op.alter_column("prepayment_policy", server_default=None)
        batch_op.alter_column("payoff_interest", server_default=None)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column("principal_amount", nullable=False)
        batch_op.alter_column("interest_amount", nullable=False)
        batch_op.alter_column("paid_amount_after", nullable=False)
        batch_op.alter_column("kind", server_default=None)
        batch_op.alter_column("waived_interest_amount", server_default=None)
        # "Paid by date D" seeks the amount now, not the week.
        batch_op.drop_index("ix_payments_loan_id_payment_date_last_week")
        batch_op.create_index(
            batch_op.f("ix_payments_loan_id_payment_date_paid_amount_after"),
            ["loan_id", "payment_date", "paid_amount_after"],
            unique=False,
        )


def _split_payments(conn) -> None:
    """Each payment's split and A after it, from its loan's terms: in id batches."""
    read = sa.text(
        "SELECT p.id, p.amount, p.outstanding_after, l.principal_amount AS principal,"
        " l.interest_rate_bps, l.weeks, l.start_date"
        " FROM payments p JOIN loans l ON l.id = p.loan_id"
        " WHERE p.id > :after ORDER BY p.id LIMIT :limit"
    )
    write = sa.text(
        "UPDATE payments SET principal_amount = :principal, interest_amount = :interest,"
        " paid_amount_after = :paid_after WHERE id = :id"
    )
    after = 0
    while rows := conn.execute(read, {"after": after, "limit": BATCH}).all():
        updates = []
        for row in rows:
            terms = LoanTerms(
                principal_amount=row.principal,
                interest_rate_bps=row.interest_rate_bps,
                weeks=row.weeks,
                start_date=row.start_date,
            )
            paid_after = terms.total_amount - row.outstanding_after
            interest = terms.interest_part(paid_after) - terms.interest_part(
                paid_after - row.amount
            )
            updates.append(
                {
                    "id": row.id,
                    "principal": row.amount - interest,
                    "interest": interest,
                    "paid_after": paid_after,
                }
            )
        conn.execute(write, updates)
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_loan_id_payment_date_paid_amount_after"))
        batch_op.create_index(
            "ix_payments_loan_id_payment_date_last_week",
            ["loan_id", "payment_date", "last_week"],
            unique=False,
        )
        batch_op.drop_column("waived_interest_amount")
        batch_op.drop_column("paid_amount_after")
        batch_op.drop_column("kind")
        batch_op.drop_column("interest_amount")
        batch_op.drop_column("principal_amount")
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_column("payoff_interest")
        batch_op.drop_column("prepayment_policy")
        batch_op.drop_column("paid_amount")
