"""The seeded loans' journal: the entries the server would have posted, in SQL.

Imported by bench/seed.py only when the schema has the journal (migration 0006,
commit 2b7b521 on), so that the same bench still seeds an older commit for an
A/B trial. Every amount comes from loanbilling.domain.journal: the creation
entry at the start date (creation_entry) and, for each seeded payment, the
change in the loan's balances it causes (entry of loan_balances before and
after), debit-positive. The SQL only multiplies them out over a group's loans
(unnest of the domain's amounts, like the events), then sums ledger_totals from
the entries with one INSERT ... SELECT ... GROUP BY, as migration 0006 does.
"""

from __future__ import annotations

import datetime as dt

from loanbilling.domain.journal import (
    ACCOUNTS,
    Account,
    NewEntry,
    creation_entry,
    entry,
    loan_balances,
)
from loanbilling.domain.loan import LoanTerms
from loanbilling.domain.payment import PaymentKind
from loanbilling.storage.posting import COLUMN, TOTAL_COLUMNS
from loanbilling.storage.tables import LEDGER_SHARDS

AMOUNT_COLUMNS = tuple(COLUMN[account] for account in ACCOUNTS)
INSERT = (
    "INSERT INTO journal_entries (id, loan_id, entry_date, kind, payment_id, currency_code, "
    f"{', '.join(AMOUNT_COLUMNS)}, created_at) "
)


def payment_entry(
    terms: LoanTerms, loan_id: int, paid_before: int, amount: int, on: dt.date, payment_id: int
) -> NewEntry:
    """A regular payment's entry: the change in the loan's balances from the paid
    amount `paid_before` to `paid_before + amount` (nothing waived, no write-off)."""
    return entry(
        PaymentKind.REGULAR.entry_kind,
        loan_id,
        terms,
        on,
        loan_balances(terms, paid_before, 0, None),
        loan_balances(terms, paid_before + amount, 0, None),
        payment_id,
    )


def _arrays(entries: list[NewEntry], start: dt.date) -> dict[str, list]:
    """The entries as parallel arrays: day offset from the start date, kind, amounts."""
    return {
        "j_day": [(e.entry_date - start).days for e in entries],
        "j_kind": [e.kind.value for e in entries],
        **{f"j_{COLUMN[a]}": [e.amounts[a] for e in entries] for a in ACCOUNTS},
    }


def _unnest() -> str:
    amounts = ", ".join(f"%(j_{c})s::bigint[]" for c in AMOUNT_COLUMNS)
    return (
        f"unnest(%(j_day)s::int[], %(j_kind)s::text[], {amounts}) WITH ORDINALITY "
        f"AS t(day, kind, {', '.join(AMOUNT_COLUMNS)}, i)"
    )


def uniform_statement(
    terms: LoanTerms, paid: int, lo: int, hi: int, first_id: int, pay_base: int
) -> tuple[str, dict, int]:
    """A group of one shape (bench/seed.py, _uniform_group): each loan's creation
    entry, then one entry per week 1..paid, the payment of INSTALLMENT on its due
    date (payment id pay_base + (loan - lo) x paid + (week - 1)). Returns the
    statement, its parameters and the number of entries per loan."""
    entries = [creation_entry(0, terms)]
    for week in range(1, paid + 1):
        before = terms.amount_through(week - 1)
        amount = terms.amount_through(week) - before
        entries.append(payment_entry(terms, 0, before, amount, terms.due_date(week), 0))
    per = len(entries)
    sql = (
        INSERT + "SELECT %(j_base)s + (l.id - %(lo)s) * %(j_per)s + (t.i - 1), l.id, "
        "l.start_date + t.day, t.kind, "
        "CASE WHEN t.i > 1 THEN %(pay_base)s + (l.id - %(lo)s) * %(p)s + (t.i - 2) END, "
        f"l.currency_code, {', '.join(f't.{c}' for c in AMOUNT_COLUMNS)}, "
        "(l.start_date + t.day)::timestamptz "
        f"FROM loans l, {_unnest()} "
        "WHERE l.id BETWEEN %(lo)s AND %(hi)s"
    )
    params = {
        **_arrays(entries, terms.start_date),
        "j_base": first_id,
        "j_per": per,
        "lo": lo,
        "hi": hi,
        "pay_base": pay_base,
        "p": paid,
    }
    return sql, params, per


def filler_statements(
    terms: LoanTerms, lo: int, hi: int, first_id: int, pay_base: int
) -> list[tuple[str, dict]]:
    """The filler (bench/seed.py, _filler): each loan's creation entry at its start
    date, and for a loan with k = paid_count > 0 installments paid, the entry of its
    one payment of k installments on week k's due date (payment id pay_base +
    (loan - lo)). Loan l's entries are first_id + 2 (l - lo) and the next id.
    `terms`: the filler's terms at any start date (the amounts do not depend on it)."""
    created = creation_entry(0, terms)
    paid = [
        payment_entry(terms, 0, 0, terms.amount_through(k), terms.due_date(k), 0)
        for k in range(1, terms.weeks + 1)
    ]
    base = {"j_base": first_id, "lo": lo, "hi": hi, "pay_base": pay_base}
    creation_sql = (
        INSERT + "SELECT %(j_base)s + 2 * (l.id - %(lo)s), l.id, l.start_date, %(kind)s, NULL, "
        f"l.currency_code, {', '.join(f'%(c_{c})s' for c in AMOUNT_COLUMNS)}, "
        "l.start_date::timestamptz FROM loans l WHERE l.id BETWEEN %(lo)s AND %(hi)s"
    )
    creation_params = {
        **base,
        "kind": created.kind.value,
        **{f"c_{COLUMN[a]}": created.amounts[a] for a in ACCOUNTS},
    }
    # Arrays indexed by k (PostgreSQL arrays start at 1).
    on = "l.start_date + (%(j_day)s::int[])[l.paid_count]"
    payment_sql = (
        INSERT + "SELECT %(j_base)s + 2 * (l.id - %(lo)s) + 1, l.id, "
        f"{on}, (%(j_kind)s::text[])[l.paid_count], %(pay_base)s + (l.id - %(lo)s), "
        "l.currency_code, "
        + ", ".join(f"(%(j_{c})s::bigint[])[l.paid_count]" for c in AMOUNT_COLUMNS)
        + f", ({on})::timestamptz "
        "FROM loans l WHERE l.id BETWEEN %(lo)s AND %(hi)s AND l.paid_count > 0"
    )
    return [
        (creation_sql, creation_params),
        (payment_sql, {**base, **_arrays(paid, terms.start_date)}),
    ]


def _sums() -> str:
    return ", ".join(
        f"SUM(CASE WHEN {c} > 0 THEN {c} ELSE 0 END), SUM(CASE WHEN {c} < 0 THEN -{c} ELSE 0 END)"
        for c in AMOUNT_COLUMNS
    )


def sum_totals_statement(first_id: int, last_id: int) -> tuple[str, dict]:
    """Adds entries first_id..last_id to their days' ledger_totals rows (shard: the
    loan id modulo LEDGER_SHARDS, as storage.posting.totals_row), with one
    INSERT ... SELECT ... GROUP BY as migration 0006; an existing row of the day
    and shard (an earlier stage's) is added to, as a posting's upsert does."""
    added = ", ".join(f"{c} = ledger_totals.{c} + EXCLUDED.{c}" for c in TOTAL_COLUMNS)
    sql = (
        f"INSERT INTO ledger_totals (currency_code, entry_date, shard, {', '.join(TOTAL_COLUMNS)}) "
        f"SELECT currency_code, entry_date, loan_id %% {LEDGER_SHARDS}, {_sums()} "
        "FROM journal_entries WHERE id BETWEEN %(first)s AND %(last)s "
        f"GROUP BY currency_code, entry_date, loan_id %% {LEDGER_SHARDS} "
        f"ON CONFLICT (currency_code, entry_date, shard) DO UPDATE SET {added}"
    )
    return sql, {"first": first_id, "last": last_id}


# Checks


def verify_loan(
    cur,
    loan_id: int,
    terms: LoanTerms,
    payments: list[tuple[int, int, dt.date, int, int]],
    paid_amount: int,
) -> None:
    """A seeded loan's entries are the ones the domain posts for its history: the
    creation entry, then one entry per payment (id, amount, date, principal,
    interest) in order, whose split is the payment's; their sum is the balances
    its state defines (loan_balances of its paid amount)."""
    cur.execute(
        "SELECT entry_date, kind, payment_id, currency_code, "
        f"{', '.join(AMOUNT_COLUMNS)} FROM journal_entries WHERE loan_id = %s ORDER BY id",
        (loan_id,),
    )
    posted = cur.fetchall()
    expected = [creation_entry(loan_id, terms)]
    paid = 0
    for payment_id, amount, on, principal, interest in payments:
        e = payment_entry(terms, loan_id, paid, amount, on, payment_id)
        split = (e.amounts[Account.CASH], -e.amounts[Account.LOAN_PORTFOLIO])
        assert (*split, -e.amounts[Account.INTEREST_INCOME]) == (amount, principal, interest), (
            loan_id,
            payment_id,
            e.amounts,
        )
        expected.append(e)
        paid += amount
    rows = [
        (e.entry_date, e.kind.value, e.payment_id, e.currency_code, *_amounts(e)) for e in expected
    ]
    assert posted == rows, (loan_id, posted, rows)
    balances = loan_balances(terms, paid_amount, 0, None)
    sums = [sum(row[4 + i] for row in posted) for i in range(len(ACCOUNTS))]
    assert sums == [balances[a] for a in ACCOUNTS], (loan_id, sums, balances)


def _amounts(e: NewEntry) -> list[int]:
    return [e.amounts[a] for a in ACCOUNTS]


def totals_agree(cur) -> tuple[int, int]:
    """The maintained totals hold the entries' debits and credits, per currency;
    returns (journal_entries rows, ledger_totals rows)."""
    cur.execute(f"SELECT currency_code, {_sums()} FROM journal_entries GROUP BY 1 ORDER BY 1")
    entries = cur.fetchall()
    sums = ", ".join(f"SUM({c})" for c in TOTAL_COLUMNS)
    cur.execute(f"SELECT currency_code, {sums} FROM ledger_totals GROUP BY 1 ORDER BY 1")
    totals = cur.fetchall()
    assert entries == totals, (entries, totals)
    cur.execute("SELECT count(*) FROM journal_entries")
    entry_rows = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM ledger_totals")
    return entry_rows, cur.fetchone()[0]


def trial_balance_from_entries(cur, as_of: dt.date, currency: str) -> dict[str, tuple[int, int]]:
    """Each account's (debit total, credit total) summed from the entries themselves
    (not the totals), dated on or before `as_of`: what GetTrialBalance must answer."""
    cur.execute(
        f"SELECT {_sums()} FROM journal_entries WHERE currency_code = %s AND entry_date <= %s",
        (currency, as_of),
    )
    row = cur.fetchone()
    return {
        a.value: (int(row[2 * i] or 0), int(row[2 * i + 1] or 0)) for i, a in enumerate(ACCOUNTS)
    }


def explain_trial_balance(cur, as_of: dt.date, currency: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements GetTrialBalance runs without a
    currency named (the server's own, from loanbilling.storage.journal: the books'
    currencies, then the totals of the one): per statement the relations its scans
    read, the rows they read (returned plus filtered out), shared buffers, time;
    and its text plan."""
    from sqlalchemy.dialects import postgresql

    from loanbilling.storage import journal as ledger

    given = {"as_of": as_of, "currency_code": currency}
    out: dict = {}
    for name, statement in (
        ("currencies", ledger._CURRENCIES),
        ("totals", ledger.TRIAL_BALANCE),
    ):
        compiled = statement.compile(dialect=postgresql.dialect())
        params = {**compiled.params, **{k: v for k, v in given.items() if k in compiled.params}}
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(compiled), params)
        plan = cur.fetchone()[0][0]
        scans: list[dict] = []
        _scans(plan["Plan"], scans)
        top = plan["Plan"]
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(compiled), params)
        out[name] = {
            "relations": sorted({s["relation"] for s in scans}),
            "scans": scans,
            "rows_read": sum(s["rows_read"] for s in scans),
            "shared_buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
            "execution_ms": round(plan["Execution Time"], 3),
            "text": [row[0] for row in cur.fetchall()],
        }
    return out


def _scans(node: dict, found: list[dict]) -> None:
    if "Relation Name" in node:
        loops = node.get("Actual Loops", 1)
        removed = node.get("Rows Removed by Filter", 0) + node.get(
            "Rows Removed by Index Recheck", 0
        )
        found.append(
            {
                "relation": node["Relation Name"],
                "node": node["Node Type"],
                "index": node.get("Index Name"),
                "rows_read": round((node.get("Actual Rows", 0) + removed) * loops),
            }
        )
    for child in node.get("Plans", []):
        _scans(child, found)
