"""The ledger's reads in SQL: entries in posting order, the trial balance from
the maintained totals, and what reconciling the books compares. Posting is
loanbilling.storage.posting's."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, and_, bindparam, case, func, literal, select

from loanbilling.domain.journal import (
    ACCOUNTS,
    NO_BALANCES,
    Account,
    EntryKind,
    JournalEntry,
    LoanBooks,
)
from loanbilling.storage.posting import COLUMN, TOTAL_COLUMNS
from loanbilling.storage.repository import loan_from_row
from loanbilling.storage.tables import (
    ACCOUNT_COLUMNS,
    journal_entries,
    ledger_totals,
    loans,
    payments,
)


def entry_from_row(row) -> JournalEntry:
    return JournalEntry(
        id=row.id,
        loan_id=row.loan_id,
        entry_date=row.entry_date,
        kind=EntryKind(row.kind),
        currency_code=row.currency_code,
        amounts={account: row._mapping[COLUMN[account]] for account in ACCOUNTS},
        payment_id=row.payment_id,
    )


def list_entries(
    conn: Connection,
    *,
    loan_id: int | None,
    from_date: dt.date | None,
    to_date: dt.date | None,
    after_id: int | None,
    limit: int,
) -> list[JournalEntry]:
    """Entries in posting order (id), narrowed to a loan and a date range."""
    query = select(journal_entries).order_by(journal_entries.c.id).limit(limit)
    if loan_id is not None:
        query = query.where(journal_entries.c.loan_id == loan_id)
    if from_date is not None:
        query = query.where(journal_entries.c.entry_date >= from_date)
    if to_date is not None:
        query = query.where(journal_entries.c.entry_date <= to_date)
    if after_id is not None:
        query = query.where(journal_entries.c.id > after_id)
    return [entry_from_row(row) for row in conn.execute(query)]


# What a trial balance runs: a range of ledger_totals' primary key.
TRIAL_BALANCE = select(
    *(
        func.coalesce(func.sum(ledger_totals.c[name]), literal(0)).label(name)
        for name in TOTAL_COLUMNS
    )
).where(
    ledger_totals.c.currency_code == bindparam("currency_code"),
    ledger_totals.c.entry_date <= bindparam("as_of"),
)
_CURRENCIES = (
    select(ledger_totals.c.currency_code)
    .where(ledger_totals.c.entry_date <= bindparam("as_of"))
    .group_by(ledger_totals.c.currency_code)
    .order_by(ledger_totals.c.currency_code)
)


def trial_balance(
    conn: Connection, as_of: dt.date, currency_code: str
) -> dict[Account, tuple[int, int]]:
    """(debit total, credit total) per account over the entries dated on or
    before `as_of`: a range of ledger_totals' primary key, days x shards rows."""
    row = conn.execute(TRIAL_BALANCE, {"currency_code": currency_code, "as_of": as_of}).one()
    values = row._mapping
    return {
        account: (int(values[f"{COLUMN[account]}_debit"]), int(values[f"{COLUMN[account]}_credit"]))
        for account in ACCOUNTS
    }


def currencies(conn: Connection, as_of: dt.date) -> list[str]:
    """The currencies the books hold entries of, dated on or before `as_of`."""
    return list(conn.execute(_CURRENCIES, {"as_of": as_of}).scalars())


def posted_by_loan(conn: Connection, first_id: int, last_id: int) -> dict[int, dict[Account, int]]:
    """Each loan's posted balances (the sum of its entries), for loans first_id..last_id."""
    query = (
        select(
            journal_entries.c.loan_id,
            *(func.sum(journal_entries.c[COLUMN[a]]).label(COLUMN[a]) for a in ACCOUNTS),
        )
        .where(and_(journal_entries.c.loan_id >= first_id, journal_entries.c.loan_id <= last_id))
        .group_by(journal_entries.c.loan_id)
    )
    return {
        row.loan_id: {a: int(row._mapping[COLUMN[a]]) for a in ACCOUNTS}
        for row in conn.execute(query)
    }


def totals_by_currency(conn: Connection, source: str) -> dict[str, dict[str, int]]:
    """Debit and credit sums per currency, from the entries (`source` "entries") or
    from the maintained totals ("totals"): the two must agree."""
    if source == "totals":
        columns = [func.sum(ledger_totals.c[name]).label(name) for name in TOTAL_COLUMNS]
        query = select(ledger_totals.c.currency_code, *columns).group_by(
            ledger_totals.c.currency_code
        )
    else:
        columns = []
        for name in ACCOUNT_COLUMNS:
            amount = journal_entries.c[name]
            columns += [
                func.sum(_positive(amount)).label(f"{name}_debit"),
                func.sum(_positive(-amount)).label(f"{name}_credit"),
            ]
        query = select(journal_entries.c.currency_code, *columns).group_by(
            journal_entries.c.currency_code
        )
    return {
        row.currency_code: {name: int(row._mapping[name]) for name in TOTAL_COLUMNS}
        for row in conn.execute(query)
    }


def _positive(amount):
    return case((amount > 0, amount), else_=literal(0))


class SqlJournal:
    """The ledger's reads, on one connection (storage.interfaces.Journal)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def list(self, **kwargs) -> list[JournalEntry]:
        return list_entries(self.conn, **kwargs)

    def trial_balance(self, as_of: dt.date, currency_code: str) -> dict[Account, tuple[int, int]]:
        return trial_balance(self.conn, as_of, currency_code)

    def currencies(self, as_of: dt.date) -> list[str]:
        return currencies(self.conn, as_of)

    def loan_books(self, after_loan_id: int, limit: int) -> list[LoanBooks]:
        """The next `limit` loans by id after `after_loan_id`, each with the interest
        its live payoffs waived and the sums of its posted entries."""
        rows = self.conn.execute(
            select(loans).where(loans.c.id > after_loan_id).order_by(loans.c.id).limit(limit)
        ).all()
        if not rows:
            return []
        first, last = rows[0].id, rows[-1].id
        posted = posted_by_loan(self.conn, first, last)
        waived = dict(
            self.conn.execute(
                select(payments.c.loan_id, func.sum(payments.c.waived_interest_amount))
                .where(
                    payments.c.waived_interest_amount > 0,
                    payments.c.reversal_date.is_(None),
                    payments.c.loan_id.between(first, last),
                )
                .group_by(payments.c.loan_id)
            ).all()
        )
        return [
            LoanBooks(
                loan_from_row(row),
                int(waived.get(row.id, 0)),
                posted.get(row.id, dict(NO_BALANCES)),
            )
            for row in rows
        ]

    def totals_differences(self) -> list[tuple[str, Account, int, int]]:
        """(currency, account, entries' net, maintained totals' net) where the
        maintained totals a trial balance reads differ from the entries."""
        entries = totals_by_currency(self.conn, "entries")
        totals = totals_by_currency(self.conn, "totals")
        found = []
        for currency in sorted(entries.keys() | totals.keys()):
            for account in ACCOUNTS:
                name = COLUMN[account]
                by = [
                    source.get(currency, {}).get(f"{name}_{side}", 0)
                    for source in (entries, totals)
                    for side in ("debit", "credit")
                ]
                if by[:2] != by[2:]:
                    found.append((currency, account, by[0] - by[1], by[2] - by[3]))
        return found
