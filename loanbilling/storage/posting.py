"""Posting a journal entry in SQL, in the transaction of its movement.

An entry is one row of `journal_entries` with one debit-positive column per
account (domain.journal.NewEntry.amounts). Posting it also adds its debits and
credits to its day's row of `ledger_totals` (one of LEDGER_SHARDS rows per
currency and day, chosen by the loan's id) with an upsert, so that a trial
balance at any date reads a few rows per day instead of every entry.
loanbilling.storage.one_statement writes the same rows inside its statements.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from loanbilling.domain.journal import ACCOUNTS, Account, NewEntry
from loanbilling.storage.tables import (
    ACCOUNT_COLUMNS,
    LEDGER_SHARDS,
    journal_entries,
    ledger_totals,
)

COLUMN: dict[Account, str] = {account: account.value.lower() for account in ACCOUNTS}
assert tuple(COLUMN.values()) == ACCOUNT_COLUMNS
TOTAL_COLUMNS: tuple[str, ...] = tuple(
    f"{name}_{side}" for name in ACCOUNT_COLUMNS for side in ("debit", "credit")
)


def entry_row(entry: NewEntry, written_at: dt.datetime) -> dict[str, object]:
    """The journal_entries row of `entry`."""
    return {
        "loan_id": entry.loan_id,
        "entry_date": entry.entry_date,
        "kind": entry.kind.value,
        "payment_id": entry.payment_id,
        "currency_code": entry.currency_code,
        **{COLUMN[account]: entry.amounts[account] for account in ACCOUNTS},
        "created_at": written_at,
    }


def totals_row(entry: NewEntry) -> dict[str, object]:
    """The ledger_totals row an entry adds to: its day's shard, its debits and credits."""
    row: dict[str, object] = {
        "currency_code": entry.currency_code,
        "entry_date": entry.entry_date,
        "shard": entry.loan_id % LEDGER_SHARDS,
    }
    for account in ACCOUNTS:
        amount = entry.amounts[account]
        row[f"{COLUMN[account]}_debit"] = max(amount, 0)
        row[f"{COLUMN[account]}_credit"] = max(-amount, 0)
    return row


def _add_totals(dialect):
    """INSERT ... ON CONFLICT DO UPDATE adding to the day's shard row."""
    statement = dialect.insert(ledger_totals)
    return statement.on_conflict_do_update(
        index_elements=["currency_code", "entry_date", "shard"],
        set_={name: ledger_totals.c[name] + statement.excluded[name] for name in TOTAL_COLUMNS},
    )


_ADD_TOTALS = {"postgresql": _add_totals(postgresql), "sqlite": _add_totals(sqlite)}
_INSERT_ENTRY = insert(journal_entries)


def post(conn: Connection, entry: NewEntry, written_at: dt.datetime) -> None:
    """Posts `entry` in the connection's transaction: its row and its totals."""
    conn.execute(_INSERT_ENTRY, entry_row(entry, written_at))
    conn.execute(_ADD_TOTALS[conn.dialect.name], totals_row(entry))


# Entries are immutable: the database refuses to change or delete one, whatever
# the code path (a correction is a new entry). Created by migration 0006.
IMMUTABLE = "journal entries are immutable: post a correcting entry instead"
GUARD_DDL: dict[str, tuple[str, ...]] = {
    "postgresql": (
        "CREATE FUNCTION journal_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{IMMUTABLE}'; END $$",
        "CREATE TRIGGER journal_entries_immutable BEFORE UPDATE OR DELETE ON journal_entries"
        " FOR EACH ROW EXECUTE FUNCTION journal_entries_immutable()",
    ),
    "sqlite": tuple(
        f"CREATE TRIGGER journal_entries_no_{verb.lower()} BEFORE {verb} ON journal_entries"
        f" BEGIN SELECT RAISE(ABORT, '{IMMUTABLE}'); END"
        for verb in ("UPDATE", "DELETE")
    ),
}
UNGUARD_DDL: dict[str, tuple[str, ...]] = {
    "postgresql": (
        "DROP TRIGGER journal_entries_immutable ON journal_entries",
        "DROP FUNCTION journal_entries_immutable()",
    ),
    "sqlite": (
        "DROP TRIGGER journal_entries_no_update",
        "DROP TRIGGER journal_entries_no_delete",
    ),
}
