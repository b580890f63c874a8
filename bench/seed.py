"""A fresh PostgreSQL database with a seeded portfolio, written with set-based SQL.

The schema comes from `loanbilling migrate`; the rows are bulk-inserted with
INSERT ... SELECT generate_series, foreign-key triggers off for the load
(session_replication_role = replica). Every loan of a group shares its terms,
so the figures a group's rows carry (status, outstanding, events) are computed
once with loanbilling.domain and `verify` replays a sample of every group
through the same domain rules (settle_payment, Position) to prove the rows are
what the server itself would have written.

Every loan lends 100,000 x weeks at 1000 bps, so every installment is 110,000
(100,000 principal + 10,000 interest), as in the canonical loan.

Stage A (the "1,000 loans" database):
  read     50 weeks, started 20 weeks ago, weeks 1-18 paid one by one on their
           due dates: ACTIVE with one installment missed (GetLoan, ListPayments)
  paid1    520 weeks, started 8 days ago, week 1 paid: ACTIVE
  paid520  520 weeks, started 521 weeks ago, all 520 paid one by one: PAID
Stage B (grown to `total_loans`):
  pay, hot 50 weeks, started 51 weeks ago, nothing paid: DELINQUENT, every
           installment payable (MakePayment capacity: 50 installments a loan),
           with the outbox history daily sweeps would have written
  payoff   10 weeks, started 22 days ago, weeks 1-3 paid one by one on their due
           dates: ACTIVE, nothing missed; FULL payoff interest, so each loan's
           payoff amount is its outstanding, 7 x 110,000 (PayOffLoan, once each)
  reverse  the payoff group's shape, loans of their own: ReversePayment reverses
           each loan's middle payment (week 2's) once; the week-3 payment then
           settles week 2, and the loan owes 8 x 110,000, ACTIVE (week 3 missed)
  replay   the pay group's shape, loans of their own: paid by pgbench replaying a
           payment's statements (bench/dblimit.py, the database's limit)
  filler   `filler_weeks` weeks, started 8 days to (weeks - 1) weeks ago, one
           payment of every installment due so far (80 %), all but one (15 %)
           or all but two (5 %, stored ACTIVE: the next sweep turns them
           DELINQUENT), no events (as if imported); a customer has 4 loans.

The journal (bench/journal.py), when the schema has one (migration 0006): every
loan's creation entry at its start date and one entry per seeded payment, the
amounts from loanbilling.domain.journal; ledger_totals summed from them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from loanbilling.domain.events import EventKind, NewEvent, creation_events, delinquent_event
from loanbilling.domain.history import PaymentRecord, reallocate
from loanbilling.domain.loan import (
    LoanStatus,
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
)
from loanbilling.domain.payment import PaymentKind, check_payment_date, settle_payment
from loanbilling.domain.payoff import payoff_quote

INSTALLMENT = 110_000
PRINCIPAL_PART = 100_000
INTEREST_PART = 10_000
RATE_BPS = 1000
# The `payoff` group: its loans' shape (PayOffLoan pays each off once, for
# INSTALLMENT x (PAYOFF_WEEKS - PAYOFF_PAID) under FULL payoff interest).
PAYOFF_WEEKS = 10
PAYOFF_PAID = 3
# The `reverse` group: the same shape; ReversePayment reverses the payment of this
# week (the middle one of three), so the later one is re-allocated.
REVERSE_WEEKS = PAYOFF_WEEKS
REVERSE_PAID = PAYOFF_PAID
REVERSED_WEEK = 2
# What the loan owes after that reversal, and its status then (week 3, due
# yesterday, is missed: one installment, below the threshold of 2).
REVERSE_OUTSTANDING_AFTER = INSTALLMENT * (REVERSE_WEEKS - (REVERSE_PAID - 1))
REVERSE_STATUS_AFTER = "ACTIVE"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOANBILLING = Path(sys.executable).parent / "loanbilling"


def terms_for(weeks: int, start: dt.date) -> LoanTerms:
    terms = LoanTerms.create(
        principal_amount=PRINCIPAL_PART * weeks,
        interest_rate_bps=RATE_BPS,
        weeks=weeks,
        start_date=start,
    )
    # The SQL below writes constant installments: check the rules agree.
    for k in (1, weeks // 2 or 1, weeks):
        i = terms.installment(k)
        assert (i.amount, i.principal_amount, i.interest_amount) == (
            INSTALLMENT,
            PRINCIPAL_PART,
            INTEREST_PART,
        ), i
    return terms


# Databases


def _libpq_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str, *, autocommit: bool = False):
    conn = psycopg2.connect(_libpq_url(url), connect_timeout=5)
    conn.autocommit = autocommit
    return conn


def create_database(admin_url: str) -> str:
    name = f"lb_bench_{uuid.uuid4().hex[:8]}"
    conn = connect(admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    conn = connect(admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def migrate(url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOANBILLING_")}
    done = subprocess.run(
        [str(LOANBILLING), "migrate", "--database-url", url, "--log-level", "WARNING"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loanbilling migrate failed ({done.returncode}):\n{done.stderr}")


# Layout


@dataclass(frozen=True)
class Group:
    name: str
    lo: int
    hi: int
    weeks: int
    # For groups of one shape; None for the filler, whose start varies per loan.
    start: dt.date | None = None
    paid: int | None = None
    # Uniform groups with payments: the id of loan `lo`'s first payment; loan l's
    # payment of week w is first_payment_id + (l - lo) * paid + (w - 1).
    first_payment_id: int | None = None

    @property
    def count(self) -> int:
        return self.hi - self.lo + 1

    def ids(self) -> list[int]:
        return [self.lo, self.hi]

    def payment_id(self, loan_id: int, week: int) -> int:
        assert self.first_payment_id is not None and self.paid and 1 <= week <= self.paid
        return self.first_payment_id + (loan_id - self.lo) * self.paid + (week - 1)


@dataclass
class Layout:
    today: dt.date
    groups: dict[str, Group]
    customers: int = 0
    payments: int = 0
    events: int = 0
    loans: int = 0
    # The journal: seeded when the schema has one (commit 2b7b521 on).
    journal: bool = False
    journal_entries: int = 0
    ledger_totals: int = 0

    def to_json(self) -> dict:
        return {
            "today": self.today.isoformat(),
            "loans": self.loans,
            "customers": self.customers,
            "payments": self.payments,
            "events": self.events,
            "journal": self.journal,
            "journal_entries": self.journal_entries,
            "ledger_totals": self.ledger_totals,
            "groups": {
                name: {
                    **{k: v for k, v in asdict(g).items() if k not in ("start",)},
                    "start": g.start.isoformat() if g.start else None,
                }
                for name, g in self.groups.items()
            },
        }


# Seeding


class Seeder:
    def __init__(self, url: str, today: dt.date) -> None:
        self.url = url
        self.conn = connect(url)
        self.layout = Layout(today, {})
        self.timings: dict[str, float] = {}
        with self.conn.cursor() as cur:
            for table in ("loans", "customers", "payments"):
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
                if cur.fetchone()[0]:
                    raise RuntimeError(f"the database is not empty ({table} has rows)")
            cur.execute("SELECT to_regclass('journal_entries') IS NOT NULL")
            self.layout.journal = cur.fetchone()[0]
        self.conn.rollback()
        # The journal's ids: the next one to seed, and the first of this stage's.
        self._next_entry = self._stage_entries = 1

    def close(self) -> None:
        self.conn.close()

    @property
    def today(self) -> dt.date:
        return self.layout.today

    def _run(self, statements: list[tuple[str, dict]]) -> None:
        with self.conn.cursor() as cur:
            # Foreign keys are checked by construction and by verify(): no per-row triggers.
            cur.execute("SET session_replication_role = replica")
            for sql, params in statements:
                cur.execute(sql, params)
            cur.execute("SET session_replication_role = DEFAULT")
        self.conn.commit()

    # Stage A and B

    def seed_small(self, read: int, history: int) -> None:
        t0 = time.perf_counter()
        self._stage_entries = self._next_entry
        t = self.today
        groups = [
            Group("read", 1, read, 50, t - dt.timedelta(days=140), 18),
            Group("paid1", read + 1, read + history, 520, t - dt.timedelta(days=8), 1),
            Group(
                "paid520",
                read + history + 1,
                read + 2 * history,
                520,
                t - dt.timedelta(days=7 * 521),
                520,
            ),
        ]
        self._customers(1, read + 2 * history)
        for g in groups:
            self._uniform_group(g, customer_sql="g", history=False)
        self._finish()
        self.timings["seed_small_s"] = time.perf_counter() - t0

    def seed_large(
        self,
        pay: int,
        hot: int,
        payoff: int,
        reverse: int,
        replay: int,
        total: int,
        filler_weeks: int,
    ) -> None:
        t0 = time.perf_counter()
        self._stage_entries = self._next_entry
        t = self.today
        lo = self.layout.loans + 1
        start = t - dt.timedelta(days=7 * 51)
        groups = [
            Group("pay", lo, lo + pay - 1, 50, start, 0),
            Group("hot", lo + pay, lo + pay + hot - 1, 50, start, 0),
        ]
        cbase = self.layout.customers + 1
        self._customers(cbase, cbase + pay + hot + payoff + reverse + replay - 1)
        for g in groups:
            self._uniform_group(g, customer_sql=f"{cbase - lo} + g", history=True)
        # Week PAYOFF_PAID fell due yesterday, the next one is due in 6 days: ACTIVE.
        payoff_start = t - dt.timedelta(days=7 * PAYOFF_PAID + 1)
        payoff_lo = lo + pay + hot
        self._uniform_group(
            Group(
                "payoff", payoff_lo, payoff_lo + payoff - 1, PAYOFF_WEEKS, payoff_start, PAYOFF_PAID
            ),
            customer_sql=f"{cbase - lo} + g",
            history=False,
        )
        reverse_lo = payoff_lo + payoff
        self._uniform_group(
            Group(
                "reverse",
                reverse_lo,
                reverse_lo + reverse - 1,
                REVERSE_WEEKS,
                payoff_start,
                REVERSE_PAID,
            ),
            customer_sql=f"{cbase - lo} + g",
            history=False,
        )
        replay_lo = reverse_lo + reverse
        self._uniform_group(
            Group("replay", replay_lo, replay_lo + replay - 1, 50, start, 0),
            customer_sql=f"{cbase - lo} + g",
            history=True,
        )
        filler_lo = replay_lo + replay
        if total >= filler_lo:
            self._filler(Group("filler", filler_lo, total, filler_weeks))
        self._finish()
        self.timings["seed_large_s"] = time.perf_counter() - t0

    def _customers(self, lo: int, hi: int) -> None:
        self._run(
            [
                (
                    "INSERT INTO customers (id, name, email, phone, created_at) "
                    "SELECT g, 'Borrower ' || g, 'borrower' || g || '@example.com', "
                    "'+62 812-' || lpad(g::text, 7, '0'), now() "
                    "FROM generate_series(%(lo)s, %(hi)s) g",
                    {"lo": lo, "hi": hi},
                )
            ]
        )
        self.layout.customers = hi

    def _loans_sql(self, weeks: int, start_sql: str, paid_sql: str, status_sql: str, cust: str):
        return (
            "INSERT INTO loans (id, customer_id, principal_amount, interest_rate_bps, weeks, "
            "start_date, currency_code, delinquency_threshold, interest_amount, total_amount, "
            "weekly_payment, paid_amount, paid_count, outstanding_amount, last_payment_date, "
            "status, request_id, prepayment_policy, payoff_interest, created_at, updated_at) "
            f"SELECT id, customer_id, {PRINCIPAL_PART * weeks}, {RATE_BPS}, {weeks}, start_date, "
            f"'IDR', 2, {INTEREST_PART * weeks}, {INSTALLMENT * weeks}, {INSTALLMENT}, "
            f"{INSTALLMENT} * paid, paid, {INSTALLMENT} * ({weeks} - paid), "
            "CASE WHEN paid > 0 THEN start_date + 7 * paid END, status, NULL, "
            "'DUE_ONLY', 'FULL', start_date::timestamptz, now() "
            f"FROM (SELECT g AS id, {cust} AS customer_id, ({start_sql})::date AS start_date, "
            f"{paid_sql} AS paid, {status_sql} AS status "
            "FROM generate_series(%(lo)s, %(hi)s) g) s"
        )

    def _installments_sql(self, paid_date_sql: str, payment_id_sql: str) -> str:
        return (
            "INSERT INTO installments (loan_id, week_number, due_date, amount, principal_amount, "
            "interest_amount, paid_date, payment_id) "
            f"SELECT l.id, w, l.start_date + 7 * w, {INSTALLMENT}, {PRINCIPAL_PART}, "
            f"{INTEREST_PART}, CASE WHEN w <= l.paid_count THEN {paid_date_sql} END, "
            f"CASE WHEN w <= l.paid_count THEN {payment_id_sql} END "
            "FROM loans l, generate_series(1, l.weeks) w "
            "WHERE l.id BETWEEN %(lo)s AND %(hi)s"
        )

    def _uniform_group(self, g: Group, *, customer_sql: str, history: bool) -> None:
        """Loans of one shape; payments of one installment each, on its due date."""
        terms = terms_for(g.weeks, g.start)
        position = Position(terms, terms.amount_through(g.paid), self.today)
        pay_base = self.layout.payments + 1
        params = {"lo": g.lo, "hi": g.hi, "start": g.start, "pay_base": pay_base, "p": g.paid}
        statements = [
            (
                self._loans_sql(g.weeks, "%(start)s", "%(p)s", "%(status)s", customer_sql),
                {**params, "status": position.status.value},
            ),
            (
                self._installments_sql(
                    "l.start_date + 7 * w",
                    "%(pay_base)s + (l.id - %(lo)s) * %(p)s + (w - 1)",
                ),
                params,
            ),
        ]
        if g.paid:
            statements.append(
                (
                    "INSERT INTO payments (id, loan_id, amount, currency_code, payment_date, "
                    "first_week, last_week, idempotency_key, outstanding_after, status_after, "
                    "principal_amount, interest_amount, kind, waived_interest_amount, "
                    "paid_amount_after, created_at) "
                    f"SELECT %(pay_base)s + (l.id - %(lo)s) * %(p)s + (w - 1), l.id, {INSTALLMENT},"
                    " 'IDR', l.start_date + 7 * w, w, w, 'seed-' || l.id || '-' || w, "
                    f"{INSTALLMENT} * (l.weeks - w), "
                    "CASE WHEN w = l.weeks THEN 'PAID' ELSE 'ACTIVE' END, "
                    f"{PRINCIPAL_PART}, {INTEREST_PART}, 'REGULAR', 0, {INSTALLMENT} * w, "
                    "(l.start_date + 7 * w)::timestamptz "
                    "FROM loans l, generate_series(1, l.paid_count) w "
                    "WHERE l.id BETWEEN %(lo)s AND %(hi)s",
                    params,
                )
            )
        statements += self._events(g, terms, history)
        if self.layout.journal:
            from bench import journal

            sql, journal_params, per = journal.uniform_statement(
                terms, g.paid, g.lo, g.hi, self._next_entry, pay_base
            )
            statements.append((sql, journal_params))
            self._next_entry += g.count * per
        self._run(statements)
        self.layout.payments += g.count * g.paid
        self.layout.loans = max(self.layout.loans, g.hi)
        self.layout.groups[g.name] = replace(g, first_payment_id=pay_base) if g.paid else g

    def _events(self, g: Group, terms: LoanTerms, history: bool) -> list[tuple[str, dict]]:
        """LOAN_CREATED; for a delinquent group, what daily sweeps would have written."""
        rows = [creation_events(0, 0, terms, g.start)[0]]
        if history:
            assert g.paid == 0
            for week in range(1, g.weeks + 1):
                seen = terms.due_date(week) + dt.timedelta(days=1)
                if seen >= self.today:
                    break
                at = Position(terms, 0, seen)
                rows.append(missed_event(terms, at, week))
                if at.missed_installments == terms.delinquency_threshold:
                    rows.append(delinquent_event(0, 0, at))
        columns = {
            "kind": ("text", [r.kind.value for r in rows]),
            "week": ("int", [r.week_number for r in rows]),
            "bdate": ("date", [r.business_date for r in rows]),
            "amount": ("bigint", [r.amount for r in rows]),
            "due": ("date", [r.due_date for r in rows]),
            "missed": ("int", [r.missed_installments for r in rows]),
            "overdue": ("bigint", [r.overdue_amount for r in rows]),
            "dpd": ("int", [r.days_past_due for r in rows]),
            "outstanding": ("bigint", [r.outstanding_amount for r in rows]),
        }
        unnest = ", ".join(f"%({name})s::{kind}[]" for name, (kind, _) in columns.items())
        base = self.layout.events + 1
        sql = (
            "INSERT INTO events (id, kind, loan_id, customer_id, week_number, "
            "business_date, created_at, amount, due_date, missed_installments, overdue_amount, "
            "days_past_due, outstanding_amount, currency_code, payment_id) "
            "SELECT n, t.kind, l.id, l.customer_id, t.week, t.bdate, t.bdate::timestamptz, "
            "t.amount, t.due, t.missed, t.overdue, t.dpd, t.outstanding, 'IDR', NULL "
            f"FROM loans l, unnest({unnest}) WITH ORDINALITY "
            "AS t(kind, week, bdate, amount, due, missed, overdue, dpd, outstanding, i), "
            "LATERAL (SELECT %(base)s + (l.id - %(lo)s) * %(per)s + (t.i - 1) AS n) k "
            "WHERE l.id BETWEEN %(lo)s AND %(hi)s"
        )
        params = {name: values for name, (_, values) in columns.items()}
        params.update(base=base, lo=g.lo, hi=g.hi, per=len(rows))
        self.layout.events += g.count * len(rows)
        # Numbered already, each with its id for its sequence.
        numbers = (
            "INSERT INTO event_numbers (sequence, event_id) "
            "SELECT n, n FROM generate_series(%(base)s::bigint, %(last)s::bigint) AS n"
        )
        return [(sql, params), (numbers, {"base": base, "last": self.layout.events})]

    def _filler(self, g: Group) -> None:
        weeks = g.weeks
        if weeks < 3:
            raise ValueError("filler loans need 3 weeks or more")
        terms_for(weeks, self.today)
        ages = 7 * (weeks - 2)  # started 8 .. 7 * (weeks - 1) days ago
        nc = max(1, g.count // 4)
        cbase = self.layout.customers + 1
        self._customers(cbase, cbase + nc - 1)
        age = f"(8 + ((g - %(lo)s) %% {ages}))"
        missed = (
            f"(CASE WHEN ((g - %(lo)s) / {ages}) %% 20 < 16 THEN 0 "
            f"WHEN ((g - %(lo)s) / {ages}) %% 20 < 19 THEN 1 ELSE 2 END)"
        )
        paid = f"GREATEST(({age} - 1) / 7 - {missed}, 0)"
        pay_base = self.layout.payments + 1
        params = {"lo": g.lo, "hi": g.hi, "today": self.today, "pay_base": pay_base}
        statements = [
            (
                self._loans_sql(
                    weeks,
                    f"%(today)s::date - {age}",
                    paid,
                    "'ACTIVE'",
                    f"{cbase} + ((g - %(lo)s) %% {nc})",
                ),
                params,
            ),
            (
                self._installments_sql(
                    "l.start_date + 7 * l.paid_count", "%(pay_base)s + (l.id - %(lo)s)"
                ),
                params,
            ),
            (
                # One payment of every installment paid, on the due date of the last one.
                "INSERT INTO payments (id, loan_id, amount, currency_code, payment_date, "
                "first_week, last_week, idempotency_key, outstanding_after, status_after, "
                "principal_amount, interest_amount, kind, waived_interest_amount, "
                "paid_amount_after, created_at) "
                f"SELECT %(pay_base)s + (l.id - %(lo)s), l.id, {INSTALLMENT} * l.paid_count, "
                "'IDR', l.start_date + 7 * l.paid_count, 1, l.paid_count, 'seed-' || l.id, "
                f"{INSTALLMENT} * (l.weeks - l.paid_count), 'ACTIVE', "
                f"{PRINCIPAL_PART} * l.paid_count, {INTEREST_PART} * l.paid_count, 'REGULAR', 0, "
                f"{INSTALLMENT} * l.paid_count, (l.start_date + 7 * l.paid_count)::timestamptz "
                "FROM loans l WHERE l.id BETWEEN %(lo)s AND %(hi)s AND l.paid_count > 0",
                params,
            ),
        ]
        if self.layout.journal:
            from bench import journal

            statements += journal.filler_statements(
                terms_for(weeks, self.today), g.lo, g.hi, self._next_entry, pay_base
            )
            self._next_entry += 2 * g.count
        self._run(statements)
        self.layout.payments += g.count
        self.layout.loans = g.hi
        self.layout.groups[g.name] = g

    def _finish(self) -> None:
        """The stage's ledger totals; identity sequences past the seeded ids, the outbox
        head, fresh statistics."""
        tables = ["customers", "loans", "payments", "events"]
        if self.layout.journal:
            from bench import journal

            tables.append("journal_entries")
            if self._next_entry > self._stage_entries:
                self._run([journal.sum_totals_statement(self._stage_entries, self._next_entry - 1)])
        with self.conn.cursor() as cur:
            for table in tables:
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT max(id) FROM {table}), 1))"  # noqa: S608
                )
            cur.execute(
                "UPDATE event_sequence SET last_sequence = "
                "(SELECT coalesce(max(sequence), 0) FROM event_numbers) WHERE id = 1"
            )
            cur.execute("SELECT count(*) FROM payments")
            self.layout.payments = cur.fetchone()[0]
            if self.layout.journal:
                cur.execute("SELECT count(*), coalesce(max(id), 0) FROM journal_entries")
                self.layout.journal_entries, last = cur.fetchone()
                self._next_entry = last + 1
                cur.execute("SELECT count(*) FROM ledger_totals")
                self.layout.ledger_totals = cur.fetchone()[0]
        self.conn.commit()
        vacuum(self.url)

    # Verification

    def verify(self, per_group: int = 12) -> int:
        """Replays sample loans of every group through the domain rules; returns loans checked."""
        checked = 0
        with self.conn.cursor() as cur:
            for g in self.layout.groups.values():
                step = max(1, g.count // per_group)
                # The one amount PayOffLoan will send for each of these loans.
                payoff = INSTALLMENT * (g.weeks - g.paid) if g.name == "payoff" else None
                for loan_id in range(g.lo, g.hi + 1, step):
                    _verify_loan(
                        cur,
                        loan_id,
                        self.today,
                        filler=g.name == "filler",
                        payoff=payoff,
                        reverse=g.payment_id(loan_id, REVERSED_WEEK)
                        if g.name == "reverse"
                        else None,
                        journal=self.layout.journal,
                    )
                    checked += 1
            if self.layout.journal:
                from bench import journal

                # Every entry's debits and credits are in the totals a trial balance reads.
                journal.totals_agree(cur)
        self.conn.rollback()
        return checked


def missed_event(terms: LoanTerms, at: Position, week: int):
    """The INSTALLMENT_MISSED event the sweep at `at.as_of` writes for `week`."""
    installment = terms.installment(week)
    return NewEvent(
        kind=EventKind.INSTALLMENT_MISSED,
        loan_id=0,
        customer_id=0,
        week_number=week,
        business_date=at.as_of,
        amount=installment.amount,
        due_date=installment.due_date,
        missed_installments=at.missed_installments,
        overdue_amount=at.overdue_amount,
        days_past_due=at.days_past_due,
        outstanding_amount=at.outstanding_amount,
        currency_code=terms.currency_code,
    )


def _verify_loan(
    cur,
    loan_id: int,
    today: dt.date,
    *,
    filler: bool,
    payoff: int | None = None,
    reverse: int | None = None,
    journal: bool = False,
) -> None:
    """`payoff`: the payoff amount the loan must be quoted today (the `payoff` group).
    `reverse`: the payment ReversePayment will reverse (the `reverse` group); the
    live history without it must leave the loan owing REVERSE_OUTSTANDING_AFTER.
    `journal`: its entries must be the ones the domain posts for its history."""
    cur.execute(
        "SELECT principal_amount, interest_rate_bps, weeks, start_date, currency_code, "
        "delinquency_threshold, interest_amount, total_amount, weekly_payment, paid_count, "
        "outstanding_amount, last_payment_date, status, paid_amount, prepayment_policy, "
        "payoff_interest FROM loans WHERE id = %s",
        (loan_id,),
    )
    row = cur.fetchone()
    assert row, f"loan {loan_id} missing"
    (principal, rate, weeks, start, currency, threshold, interest, total, weekly) = row[:9]
    paid_count, outstanding, last_payment_date, status, paid_amount = row[9:14]
    prepayment_policy, payoff_interest = row[14:]
    terms = LoanTerms.create(
        principal_amount=principal,
        interest_rate_bps=rate,
        weeks=weeks,
        start_date=start,
        currency_code=currency,
        delinquency_threshold=threshold,
        prepayment_policy=PrepaymentPolicy(prepayment_policy),
        payoff_interest=PayoffInterest(payoff_interest),
    )
    assert (interest, total, weekly) == (
        terms.interest_amount,
        terms.total_amount,
        terms.weekly_payment,
    ), loan_id
    cur.execute(
        "SELECT week_number, due_date, amount, principal_amount, interest_amount, paid_date, "
        "payment_id FROM installments WHERE loan_id = %s ORDER BY week_number",
        (loan_id,),
    )
    lines = cur.fetchall()
    assert [line[0] for line in lines] == list(range(1, weeks + 1)), loan_id
    for week, due, amount, principal_part, interest_part, paid_date, _ in lines:
        expected = terms.installment(week)
        assert (due, amount, principal_part, interest_part) == (
            expected.due_date,
            expected.amount,
            expected.principal_amount,
            expected.interest_amount,
        ), (loan_id, week)
        assert (paid_date is not None) == (week <= paid_count), (loan_id, week)
    cur.execute(
        "SELECT id, amount, payment_date, first_week, last_week, outstanding_after, status_after, "
        "principal_amount, interest_amount, kind, waived_interest_amount, paid_amount_after "
        "FROM payments WHERE loan_id = %s ORDER BY id",
        (loan_id,),
    )
    rows = cur.fetchall()
    paid, last_date = 0, None
    for payment_id, amount, on, first, last, *after_it in rows:
        outstanding_after, status_after, principal_part, interest_part, kind, waived, after = (
            after_it
        )
        check_payment_date(terms, on, business_date=today, last_payment_date=last_date)
        settled = settle_payment(terms, paid, amount, on)
        assert (settled.first_week, settled.last_week) == (first, last), loan_id
        assert settled.outstanding_after == outstanding_after, loan_id
        assert settled.status_after.value == status_after, loan_id
        assert (settled.interest_amount, paid + amount) == (interest_part, after), loan_id
        assert principal_part == amount - settled.interest_amount, loan_id
        assert (kind, waived) == (PaymentKind.REGULAR.value, 0), loan_id
        for line in lines[first - 1 : last]:
            assert (line[5], line[6]) == (on, payment_id), (loan_id, line[0])
        paid, last_date = paid + amount, on
    assert paid_amount == paid, loan_id
    if journal:
        from bench import journal as books

        books.verify_loan(cur, loan_id, terms, [(r[0], r[1], r[2], r[7], r[8]) for r in rows], paid)
    assert terms.installments_covered(paid) == paid_count, loan_id
    assert last_date == last_payment_date, loan_id
    now = Position(terms, paid, today)
    assert outstanding == now.outstanding_amount, loan_id
    # The filler's "awaiting the sweep" loans are stored ACTIVE, due DELINQUENT.
    awaiting_sweep = filler and status == "ACTIVE" and now.status is LoanStatus.DELINQUENT
    assert status == now.status.value or awaiting_sweep, (loan_id, status, now.status)
    if payoff is not None:
        quote = payoff_quote(terms, paid, today)
        assert (quote.payoff_amount, quote.waived_interest_amount) == (payoff, 0), loan_id
    if reverse is not None:
        assert reverse in {row[0] for row in rows}, (loan_id, reverse)
        records = [PaymentRecord(row[0], row[2], row[1], live=row[0] != reverse) for row in rows]
        left = reallocate(terms, records)
        after = Position(terms, left[-1].allocation.paid_amount_after if left else 0, today)
        assert (after.outstanding_amount, after.status.value) == (
            REVERSE_OUTSTANDING_AFTER,
            REVERSE_STATUS_AFTER,
        ), (loan_id, after)


def verify_reversals(conn, g: Group, today: dt.date, per_group: int = 12) -> tuple[int, int]:
    """After ReversePayment ran on the `reverse` group: (loans whose payment of
    REVERSED_WEEK is reversed, loans checked). A sample of them is checked against
    the domain's live history: the reversed payment settles nothing and carries its
    reversal; every live payment has the weeks, split and paid amount after that
    `reallocate` gives it, the installments follow them, and the loan row holds
    the live A, c(A), T - A, latest live date, status and history version 1, with
    one PAYMENT_REVERSED event. No other workload touches these payments."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT loan_id FROM payments WHERE loan_id BETWEEN %s AND %s "
            "AND reversal_date IS NOT NULL ORDER BY loan_id",
            (g.lo, g.hi),
        )
        loans = [row[0] for row in cur.fetchall()]
        sample = loans[:: max(1, len(loans) // per_group)]
        for loan_id in sample:
            _verify_reversed(cur, g, loan_id, today)
    conn.rollback()
    return len(loans), len(sample)


def _verify_reversed(cur, g: Group, loan_id: int, today: dt.date) -> None:
    target = g.payment_id(loan_id, REVERSED_WEEK)
    terms = terms_for(g.weeks, g.start)
    cur.execute(
        "SELECT id, amount, payment_date, first_week, last_week, principal_amount, "
        "interest_amount, paid_amount_after, reversal_date, reversal_key, "
        "reversal_outstanding_after, reversal_status_after "
        "FROM payments WHERE loan_id = %s ORDER BY id",
        (loan_id,),
    )
    rows = {row[0]: row for row in cur.fetchall()}
    reversed_ = [pid for pid, row in rows.items() if row[8] is not None]
    assert reversed_ == [target], (loan_id, reversed_)
    t = rows[target]
    assert t[4] == t[3] - 1, (loan_id, "the reversed payment still settles weeks")
    assert (t[8], t[10], t[11]) == (today, REVERSE_OUTSTANDING_AFTER, REVERSE_STATUS_AFTER), t
    assert t[9] is not None, loan_id
    records = [PaymentRecord(pid, row[2], row[1], live=row[8] is None) for pid, row in rows.items()]
    live = reallocate(terms, records)
    weeks: dict[int, tuple[dt.date, int]] = {}
    for move in live:
        row, a = rows[move.payment.id], move.allocation
        stored = (row[3], row[4], row[5], row[6], row[7])
        expected = (a.first_week, a.last_week, a.principal_amount, a.interest_amount)
        assert stored == (*expected, a.paid_amount_after), (loan_id, move.payment.id, stored)
        for week in a.settled_week_numbers:
            weeks[week] = (move.payment.payment_date, move.payment.id)
    cur.execute(
        "SELECT week_number, paid_date, payment_id FROM installments WHERE loan_id = %s "
        "ORDER BY week_number",
        (loan_id,),
    )
    for week, paid_date, payment_id in cur.fetchall():
        assert (paid_date, payment_id) == weeks.get(week, (None, None)), (loan_id, week)
    paid = live[-1].allocation.paid_amount_after if live else 0
    now = Position(terms, paid, today)
    cur.execute(
        "SELECT paid_amount, paid_count, outstanding_amount, last_payment_date, status, "
        "history_version FROM loans WHERE id = %s",
        (loan_id,),
    )
    assert cur.fetchone() == (
        paid,
        terms.installments_covered(paid),
        now.outstanding_amount,
        max((m.payment.payment_date for m in live), default=None),
        now.status.value,
        1,
    ), loan_id
    cur.execute(
        "SELECT count(*) FROM events WHERE loan_id = %s AND kind = %s AND payment_id = %s",
        (loan_id, EventKind.PAYMENT_REVERSED.value, target),
    )
    assert cur.fetchone()[0] == 1, loan_id


def vacuum(url: str, table: str = "") -> None:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.close()


def database_size(url: str) -> dict:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            total = cur.fetchone()[0]
            sizes = {}
            cur.execute("SELECT to_regclass('journal_entries') IS NOT NULL")
            ledger = ("journal_entries", "ledger_totals") if cur.fetchone()[0] else ()
            for table in ("loans", "installments", "payments", "events", "event_numbers", *ledger):
                cur.execute("SELECT pg_total_relation_size(%s), count(*) FROM " + table, (table,))
                size, count = cur.fetchone()
                sizes[table] = {"rows": count, "bytes": size}
        return {"bytes": total, "tables": sizes}
    finally:
        conn.close()
