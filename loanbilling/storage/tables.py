"""The schema as SQLAlchemy Core tables. Alembic migrations create it; keep both in step."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Which loans a sweep visits: twin of domain.sweep.is_swept, and the sweep index's WHERE.
SWEPT = "status <> 'PAID' AND status <> 'WRITTEN_OFF'"

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("phone", String(32), nullable=False),
    # Idempotency key of the request that created it (optional, unique).
    Column("request_id", String(128), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

loans = Table(
    "loans",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("principal_amount", BigInteger, nullable=False),
    Column("interest_rate_bps", Integer, nullable=False),
    Column("weeks", Integer, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("delinquency_threshold", Integer, nullable=False),
    Column("interest_amount", BigInteger, nullable=False),
    Column("total_amount", BigInteger, nullable=False),
    Column("weekly_payment", BigInteger, nullable=False),
    # The repayment state (rules v2): A, the sum of the live payments.
    Column("paid_amount", BigInteger, nullable=False),
    # Materialised from it: c(A), installments 1..paid_count fully covered
    # (payments are allocated oldest first), and T - A.
    Column("paid_count", Integer, nullable=False),
    Column("outstanding_amount", BigInteger, nullable=False),
    Column("last_payment_date", Date, nullable=True),
    # Materialised status at the business date; payments and the sweep keep it current.
    Column("status", String(16), nullable=False),
    Column("request_id", String(128), nullable=True, unique=True),
    # Per-loan settings (domain PrepaymentPolicy, PayoffInterest), chosen at creation.
    Column("prepayment_policy", String(24), nullable=False),
    Column("payoff_interest", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Bumped by every reversal and recovery: events are unique within one version.
    Column("history_version", Integer, nullable=False, server_default=text("0")),
    # The write-off (domain.loan.WriteOff), all NULL unless written off; its key unique.
    Column("write_off_date", Date, nullable=True),
    Column("write_off_reason", String(500), nullable=True),
    Column("written_off_principal_amount", BigInteger, nullable=True),
    Column("written_off_interest_amount", BigInteger, nullable=True),
    Column("write_off_key", String(128), nullable=True, unique=True),
    Index(None, "customer_id", "id"),
    Index(None, "status", "id"),
    # The sweep walks the loans still repaying only, however many paid or
    # written-off ones history holds (storage.sql.is_swept has the same WHERE).
    Index(
        "ix_loans_swept_id",
        "id",
        postgresql_where=text(SWEPT),
        sqlite_where=text(SWEPT),
    ),
)

installments = Table(
    "installments",
    metadata,
    Column("loan_id", Id, ForeignKey("loans.id"), primary_key=True),
    Column("week_number", Integer, primary_key=True),
    Column("due_date", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("principal_amount", BigInteger, nullable=False),
    Column("interest_amount", BigInteger, nullable=False),
    Column("paid_date", Date, nullable=True),
    Column("payment_id", Id, ForeignKey("payments.id"), nullable=True),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("payment_date", Date, nullable=False),
    # The installments it settled: weeks first_week..last_week.
    Column("first_week", Integer, nullable=False),
    Column("last_week", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    # The outcome as first answered, so that a retry replays it exactly.
    Column("outstanding_after", BigInteger, nullable=False),
    Column("status_after", String(16), nullable=False),
    # The amount's split: J(A after) - J(A before) is interest, the rest principal.
    Column("principal_amount", BigInteger, nullable=False),
    Column("interest_amount", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    # A payoff's waived interest (WAIVE_UNDUE): it counts in A without being cash.
    Column("waived_interest_amount", BigInteger, nullable=False),
    # A right after it under the live history: what a read of a past date seeks
    # (the latest live payment by then). A reversal re-allocates the later ones.
    Column("paid_amount_after", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The reversal (domain.payment.Reversal), all NULL while the payment is live.
    Column("reversal_date", Date, nullable=True),
    Column("reversal_reason", String(500), nullable=True),
    Column("reversal_key", String(128), nullable=True, unique=True),
    Column("reversal_outstanding_after", BigInteger, nullable=True),
    Column("reversal_status_after", String(16), nullable=True),
    UniqueConstraint("idempotency_key"),
    # Serves "paid by date D" as one index seek, whatever the number of payments.
    Index(None, "loan_id", "payment_date", "paid_amount_after"),
    # The portfolio sums the waived interest over the few payoffs that waived any.
    Index(
        "ix_payments_waived_loan_id_payment_date",
        "loan_id",
        "payment_date",
        postgresql_where=text("waived_interest_amount > 0"),
        sqlite_where=text("waived_interest_amount > 0"),
    ),
)

# The outbox: an insert-only log. An event is inserted in the transaction of
# the change it reports, together with its row in `pending_events`; the
# sequencer (loanbilling.storage.numbering) numbers committed events afterwards
# in one serialised step, in `event_numbers`, so that a reader following the
# numbers never skips a row that commits late. The event's own row is never
# rewritten: it is the widest row the service writes and has the most indexes.
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False),
    Column("customer_id", Id, nullable=False),
    # The installment concerned; 0 for loan-wide events (created).
    Column("week_number", Integer, nullable=False),
    Column("business_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("due_date", Date, nullable=True),
    Column("missed_installments", Integer, nullable=False),
    Column("overdue_amount", BigInteger, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("outstanding_amount", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("payment_id", Id, nullable=True),
    # The loan's history version when written (domain.events.NewEvent).
    Column("history_version", Integer, nullable=False, server_default=text("0")),
    # One event per loan, installment and kind in a version of the loan's live
    # history: what makes the sweep idempotent.
    # Its leading loan_id also serves a stream that follows one loan.
    UniqueConstraint("loan_id", "kind", "week_number", "history_version"),
    Index(None, "customer_id"),
)

# The number of each committed event: its place in the one order every reader
# follows, gap-free. Written only by the numbering.
event_numbers = Table(
    "event_numbers",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False, unique=True),
)

# The events not numbered yet: written with the event, deleted by the numbering
# that numbers it. Its rows live for milliseconds, so it has no foreign key to
# check on the payment's path: the writer puts both rows in one transaction.
pending_events = Table(
    "pending_events",
    metadata,
    Column("event_id", Id, primary_key=True, autoincrement=False),
)

# One row: the last sequence number handed out. Its row lock serialises the sequencers.
event_sequence = Table(
    "event_sequence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
)

# How far each consumer outside the database (the broker relay) has got.
consumer_cursors = Table(
    "consumer_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# The journal (domain.journal): one row per entry, immutable (migration 0006 adds
# triggers that refuse UPDATE and DELETE). The amounts are the entry's lines,
# one column per account, debit-positive; the CHECK makes every entry balance.
ACCOUNT_COLUMNS = (
    "loan_portfolio",
    "cash",
    "interest_income",
    "write_off_expense",
    "recovery_income",
)
journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False),
    Column("entry_date", Date, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payment_id", Id, nullable=True),
    Column("currency_code", String(3), nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in ACCOUNT_COLUMNS),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(" + ".join(ACCOUNT_COLUMNS) + " = 0", name="balanced"),
    Index(None, "loan_id", "id"),
    Index(None, "entry_date", "id"),
)

# Debit and credit totals per currency, day and account, maintained by every
# posting in its own transaction: a trial balance sums a few rows per day, not
# the entries. Each day's totals are split over LEDGER_SHARDS rows (by loan id),
# so that concurrent postings rarely wait for one another's row.
LEDGER_SHARDS = 16
ledger_totals = Table(
    "ledger_totals",
    metadata,
    Column("currency_code", String(3), primary_key=True),
    Column("entry_date", Date, primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    *(
        Column(f"{name}_{side}", BigInteger, nullable=False)
        for name in ACCOUNT_COLUMNS
        for side in ("debit", "credit")
    ),
)
