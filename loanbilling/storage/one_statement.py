"""PostgreSQL: a payment or a new loan written as one statement, in autocommit.

The portable path (loanbilling.storage.repository) spends a round trip per
step: BEGIN, a row lock, an INSERT or UPDATE per table, COMMIT. On PostgreSQL
the same writes fit in one statement of data-modifying CTEs, which commits
(durably) as one transaction: the round trips, and the server CPU each of them
costs, fall from seven or more to one.

A payment here is optimistic: the caller read the loan without a lock and
decided with the domain; the UPDATE of the loan is guarded by what it read
(`paid_amount`, `status` and `history_version`), every other write hangs on that UPDATE's row, so
a concurrent change makes the whole statement write nothing and the caller
decides again under the row lock. The rows are the portable path's own
(repository.loan_row, payment_row, event_row): one definition of each. The
parameters are bound by the driver (`exec_driver_sql`): these statements are
fixed text, nothing to compile, and psycopg 3 prepares each on the server once
a connection has run it a few times, so PostgreSQL plans it once per connection.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy.dialects import postgresql

from loanbilling.domain.events import NewEvent
from loanbilling.domain.journal import NewEntry
from loanbilling.domain.loan import Loan
from loanbilling.domain.payment import Payment
from loanbilling.storage.event_store import EVENT_COLUMNS, event_row
from loanbilling.storage.posting import TOTAL_COLUMNS, entry_row, totals_row
from loanbilling.storage.repository import (
    SqlLoans,
    SqlPayments,
    loan_row,
    now,
    payment_row,
)
from loanbilling.storage.tables import events, journal_entries, ledger_totals, loans, payments

_PG = postgresql.dialect()


def _placeholders(prefix: str, table, columns: Iterable[str]) -> str:
    # Casts on every value: a VALUES list types its columns by itself, and a column
    # of NULLs (due_date of a loan-wide event) would otherwise be text.
    return ", ".join(f"%({prefix}{c})s::{table.c[c].type.compile(dialect=_PG)}" for c in columns)


def _params(prefix: str, row: dict[str, object]) -> dict[str, object]:
    return {f"{prefix}{name}": value for name, value in row.items()}


def _event_values(count: int) -> str:
    rows = ", ".join(f"({_placeholders(f'e{i}_', events, EVENT_COLUMNS)})" for i in range(count))
    return f"(VALUES {rows}) AS e({', '.join(EVENT_COLUMNS)})"


def _events_from(source: str, count: int) -> str:
    """The CTEs writing `count` events, and their pending rows, once `source`
    returned its row (storage.repository.add_events in SQL)."""
    return f""", told AS (
    INSERT INTO events ({", ".join(EVENT_COLUMNS)})
    SELECT e.* FROM {source}, {_event_values(count)}
    RETURNING id
), queued AS (
    INSERT INTO pending_events (event_id) SELECT id FROM told
)"""


def _event_params(new_events: list[NewEvent], written_at) -> dict[str, object]:
    params: dict[str, object] = {}
    for i, event in enumerate(new_events):
        params.update(_params(f"e{i}_", event_row(event, written_at)))
    return params


@functools.cache
def _payment_sql(event_count: int, payment_columns: tuple[str, ...]) -> str:
    return f"""
WITH moved AS (
    UPDATE loans
    SET paid_amount = %(paid_amount)s, paid_count = %(paid_count)s,
        outstanding_amount = %(outstanding)s, last_payment_date = %(last_payment_date)s,
        status = %(status)s, history_version = %(version)s, updated_at = %(now)s
    WHERE id = %(loan_id)s AND paid_amount = %(paid_before)s AND status = %(status_before)s
      AND history_version = %(version_before)s
    RETURNING id
), paid AS (
    INSERT INTO payments ({", ".join(payment_columns)})
    SELECT {_placeholders("p_", payments, payment_columns)}
    FROM moved
    RETURNING id
), settled AS (
    UPDATE installments SET paid_date = %(last_payment_date)s, payment_id = paid.id
    FROM paid
    WHERE installments.loan_id = %(loan_id)s
      AND installments.week_number BETWEEN %(first_week)s AND %(last_week)s
){_events_from("paid", event_count)}{_posting("paid")}
SELECT id FROM paid
"""


@functools.cache
def _loan_sql(event_count: int, loan_columns: tuple[str, ...]) -> str:
    # The installments are the domain's schedule, passed as arrays; the customer's
    # row is the INSERT's source, so an unknown customer writes nothing.
    return f"""
WITH created AS (
    INSERT INTO loans ({", ".join(loan_columns)})
    SELECT {_placeholders("l_", loans, loan_columns)}
    FROM customers WHERE id = %(l_customer_id)s
    RETURNING id
), scheduled AS (
    INSERT INTO installments (loan_id, week_number, due_date, amount, principal_amount,
                              interest_amount)
    SELECT created.id, s.week, s.due_date, s.amount, s.amount - s.interest, s.interest
    FROM created,
         unnest(%(due_dates)s::date[], %(amounts)s::bigint[], %(interests)s::bigint[])
             WITH ORDINALITY AS s(due_date, amount, interest, week)
){_events_from("created", event_count)}{_posting("created")}
SELECT id FROM created
"""


def _posting(source: str) -> str:
    """The journal entry (storage.journal.entry_row) and its day's totals
    (storage.journal.totals_row, added to by an upsert), written once `source`
    (the CTE of the movement) returned its row: the same posting as journal.post."""
    entry_columns = tuple(journal_entries.c.keys())[1:]  # all but the id
    total_columns = tuple(ledger_totals.c.keys())
    added = ", ".join(f"{c} = ledger_totals.{c} + EXCLUDED.{c}" for c in TOTAL_COLUMNS)
    return f""", posted AS (
    INSERT INTO journal_entries ({", ".join(entry_columns)})
    SELECT {_placeholders("j_", journal_entries, entry_columns)} FROM {source}
), totaled AS (
    INSERT INTO ledger_totals ({", ".join(total_columns)})
    SELECT {_placeholders("t_", ledger_totals, total_columns)} FROM {source}
    ON CONFLICT (currency_code, entry_date, shard) DO UPDATE SET {added}
)"""


def _entry_params(entry: NewEntry, written_at) -> dict[str, object]:
    return {**_params("j_", entry_row(entry, written_at)), **_params("t_", totals_row(entry))}


def _array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal: one string to bind instead of one parameter per value."""
    return "{" + ",".join(str(v) for v in values) + "}"


class OneStatementLoans(SqlLoans):
    def add(self, loan: Loan, new_events: list[NewEvent], entry: NewEntry) -> bool:
        written_at = now()
        row = loan_row(loan, written_at)
        schedule = loan.terms.schedule()
        params = {
            **_params("l_", row),
            "due_dates": _array(i.due_date.isoformat() for i in schedule),
            "amounts": _array(i.amount for i in schedule),
            "interests": _array(i.interest_amount for i in schedule),
            **_event_params(new_events, written_at),
            **_entry_params(entry, written_at),
        }
        sql = _loan_sql(len(new_events), tuple(row))
        return self.conn.exec_driver_sql(sql, params).first() is not None


class OneStatementPayments(SqlPayments):
    def record(
        self,
        payment: Payment,
        before: Loan,
        after: Loan,
        new_events: list[NewEvent],
        entry: NewEntry,
    ) -> bool:
        written_at = now()
        row = payment_row(payment, after.paid_amount, written_at)
        params = {
            "loan_id": before.id,
            "paid_before": before.paid_amount,
            "status_before": before.status.value,
            "version_before": before.history_version,
            "version": after.history_version,
            "paid_amount": after.paid_amount,
            "paid_count": after.paid_count,
            "outstanding": after.outstanding_amount,
            "last_payment_date": after.last_payment_date,
            "status": after.status.value,
            "now": written_at,
            "first_week": payment.first_week,
            "last_week": payment.last_week,
            **_params("p_", row),
            **_event_params(new_events, written_at),
            **_entry_params(entry, written_at),
        }
        sql = _payment_sql(len(new_events), tuple(row))
        if self.conn.exec_driver_sql(sql, params).first() is not None:
            return True
        if self.locking:
            raise RuntimeError(f"loan {before.id} changed under its row lock")
        return False
