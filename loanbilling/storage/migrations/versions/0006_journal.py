"""the journal: one balanced entry per money movement, and its maintained totals

Creates `journal_entries` (immutable: triggers refuse UPDATE and DELETE) and
`ledger_totals`, then posts the entries of everything the database already
holds, so that the books agree with the loans right after the upgrade
(VerifyBooks): each loan's disbursement at its start; its live payments in the
order the live history allocates them, each the change in the loan's balances
it causes (domain.journal); its write-off; and each reversed payment as the
entry it posted when it was made (its amount and its split as it stood) with
its mirror at the reversal date. The totals are then summed from the entries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

from loanbilling.domain.journal import (
    ACCOUNTS,
    Account,
    EntryKind,
    NewEntry,
    creation_entry,
    entry,
    loan_balances,
)
from loanbilling.domain.loan import LoanTerms, WriteOff
from loanbilling.domain.payment import PaymentKind
from loanbilling.storage.posting import GUARD_DDL, TOTAL_COLUMNS, UNGUARD_DDL, entry_row
from loanbilling.storage.tables import ACCOUNT_COLUMNS, LEDGER_SHARDS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("loan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("currency_code", sa.String(3), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in ACCOUNT_COLUMNS),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            " + ".join(ACCOUNT_COLUMNS) + " = 0", name=op.f("ck_journal_entries_balanced")
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_journal_entries_loan_id_loans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journal_entries_loan_id_id"), ["loan_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_journal_entries_entry_date_id"), ["entry_date", "id"], unique=False
        )
    op.create_table(
        "ledger_totals",
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in TOTAL_COLUMNS),
        sa.PrimaryKeyConstraint(
            "currency_code", "entry_date", "shard", name=op.f("pk_ledger_totals")
        ),
    )
    conn = op.get_bind()
    _post_existing(conn)
    _sum_totals(conn)
    for statement in GUARD_DDL[conn.dialect.name]:
        op.execute(statement)


def _terms(row) -> LoanTerms:
    return LoanTerms(
        principal_amount=row.principal_amount,
        interest_rate_bps=row.interest_rate_bps,
        weeks=row.weeks,
        start_date=row.start_date,
        currency_code=row.currency_code,
    )


def _entries_of(loan, payments) -> list[NewEntry]:
    """A loan's entries, in the order they are dated."""
    terms = _terms(loan)
    write_off = None
    if loan.write_off_date is not None:
        write_off = WriteOff(
            loan.write_off_date,
            loan.write_off_reason,
            loan.written_off_principal_amount,
            loan.written_off_interest_amount,
            loan.write_off_key,
        )
    # (date, order within the day, what): payments before the write-off, which
    # comes before the recoveries; a reversal's mirror last.
    steps = []
    for p in payments:
        recovery = p.kind == PaymentKind.RECOVERY.value
        steps.append((p.payment_date, 2 if recovery else 0, p.id, "payment", p))
        if p.reversal_date is not None:
            steps.append((p.reversal_date, 3, p.id, "mirror", p))
    if write_off is not None:
        steps.append((write_off.on, 1, 0, "write-off", None))
    steps.sort(key=lambda step: step[:3])

    entries = [creation_entry(loan.id, terms)]
    paid, waived, written = 0, 0, None
    for on, _order, _id, what, p in steps:
        if what == "write-off":
            before = loan_balances(terms, paid, waived, None)
            written = write_off
            after = loan_balances(terms, paid, waived, written)
            entries.append(entry(EntryKind.WRITE_OFF, loan.id, terms, on, before, after))
            continue
        kind = PaymentKind(p.kind)
        if p.reversal_date is None:
            before = loan_balances(terms, paid, waived, written)
            paid += p.amount + p.waived_interest_amount
            waived += p.waived_interest_amount
            after = loan_balances(terms, paid, waived, written)
            entries.append(entry(kind.entry_kind, loan.id, terms, on, before, after, p.id))
            continue
        # A reversed payment: the entry it posted, from its split, then its mirror.
        amounts = dict.fromkeys(ACCOUNTS, 0)
        amounts[Account.CASH] = p.amount
        if kind is PaymentKind.RECOVERY:
            amounts[Account.RECOVERY_INCOME] = -p.amount
        else:
            amounts[Account.LOAN_PORTFOLIO] = -p.principal_amount
            amounts[Account.INTEREST_INCOME] = -p.interest_amount
        if what == "mirror":
            amounts = {account: -amount for account, amount in amounts.items()}
        entries.append(
            NewEntry(
                loan_id=loan.id,
                entry_date=on,
                kind=EntryKind.REVERSAL if what == "mirror" else kind.entry_kind,
                currency_code=terms.currency_code,
                amounts=amounts,
                payment_id=p.id,
            )
        )
    return entries


def _post_existing(conn) -> None:
    loans = sa.text("SELECT * FROM loans WHERE id > :after ORDER BY id LIMIT :limit")
    payments = sa.text(
        "SELECT * FROM payments WHERE loan_id BETWEEN :first AND :last ORDER BY loan_id, id"
    )
    insert = sa.table(
        "journal_entries",
        *(sa.column(name) for name in _ENTRY_COLUMNS),
    ).insert()
    now = dt.datetime.now(dt.UTC)
    after = 0
    while rows := conn.execute(loans, {"after": after, "limit": BATCH}).all():
        by_loan: dict[int, list] = {row.id: [] for row in rows}
        for p in conn.execute(payments, {"first": rows[0].id, "last": rows[-1].id}):
            by_loan[p.loan_id].append(p)
        posted = [entry_row(e, now) for row in rows for e in _entries_of(row, by_loan[row.id])]
        conn.execute(insert, posted)
        after = rows[-1].id


# storage.journal.entry_row's keys: the columns of a journal_entries row but its id.
_ENTRY_COLUMNS = (
    "loan_id",
    "entry_date",
    "kind",
    "payment_id",
    "currency_code",
    *ACCOUNT_COLUMNS,
    "created_at",
)


def _sum_totals(conn) -> None:
    sums = ", ".join(
        f"SUM(CASE WHEN {name} > 0 THEN {name} ELSE 0 END), "
        f"SUM(CASE WHEN {name} < 0 THEN -{name} ELSE 0 END)"
        for name in ACCOUNT_COLUMNS
    )
    conn.execute(
        sa.text(
            f"INSERT INTO ledger_totals (currency_code, entry_date, shard, "
            f"{', '.join(TOTAL_COLUMNS)}) "
            f"SELECT currency_code, entry_date, loan_id % {LEDGER_SHARDS}, {sums} "
            f"FROM journal_entries GROUP BY currency_code, entry_date, loan_id % {LEDGER_SHARDS}"
        )
    )


def downgrade() -> None:
    conn = op.get_bind()
    for statement in UNGUARD_DDL[conn.dialect.name]:
        op.execute(statement)
    op.drop_table("ledger_totals")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_entries_entry_date_id"))
        batch_op.drop_index(batch_op.f("ix_journal_entries_loan_id_id"))
    op.drop_table("journal_entries")
