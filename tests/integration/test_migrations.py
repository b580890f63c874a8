"""Upgrading a database created by an earlier schema keeps every row, on both
databases; a schema newer than the code is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from loanbilling.clock import FixedClock
from loanbilling.domain.loan import LoanTerms, PayoffInterest, Position
from loanbilling.domain.payment import PaymentKind
from loanbilling.services.billing import BillingService
from loanbilling.services.ledger import LedgerService
from loanbilling.services.sweep import SweepService
from loanbilling.storage.database import make_engine
from loanbilling.storage.event_store import events_after
from loanbilling.storage.migrate import (
    SchemaMismatch,
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from loanbilling.storage.numbering import number_all
from loanbilling.storage.tables import metadata
from loanbilling.storage.unit_of_work import sql_storage
from tests.support.api import lend_canonical
from tests.support.books import assert_books_exact
from tests.support.databases import sqlite_url

START = dt.date(2026, 1, 5)
WEEK = dt.timedelta(days=7)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        with sqlite_url(tmp_path, migrated=False) as url:
            yield url
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create(migrated=False)
    yield url
    databases.release(url)


def test_upgrade_from_the_first_migration_keeps_the_books(empty_url):
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0001")
        # Data written by the first release, with the schema it had.
        with engine.begin() as conn:
            now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
            conn.execute(
                text(
                    "INSERT INTO customers (id, name, email, phone, created_at) "
                    "VALUES (1, 'Siti', 'siti@example.com', '', :now)"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO loans (id, customer_id, principal_amount, interest_rate_bps,"
                    " weeks, start_date, currency_code, delinquency_threshold,"
                    " interest_amount, total_amount, weekly_payment, paid_count,"
                    " outstanding_amount, last_payment_date, status, created_at, updated_at)"
                    " VALUES (1, 1, 5000000, 1000, 50, :start, 'IDR', 2, 500000, 5500000,"
                    " 110000, 1, 5390000, :paid, 'ACTIVE', :now, :now)"
                ),
                {"start": START, "paid": START + dt.timedelta(days=7), "now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO payments (id, loan_id, amount, currency_code, payment_date,"
                    " first_week, last_week, idempotency_key, outstanding_after, status_after,"
                    " created_at) VALUES (1, 1, 110000, 'IDR', :paid, 1, 1, 'k1', 5390000,"
                    " 'ACTIVE', :now)"
                ),
                {"paid": START + dt.timedelta(days=7), "now": now},
            )
            for week in range(1, 51):
                conn.execute(
                    text(
                        "INSERT INTO installments (loan_id, week_number, due_date, amount,"
                        " principal_amount, interest_amount, paid_date, payment_id)"
                        " VALUES (1, :week, :due, 110000, 100000, 10000, :paid, :payment)"
                    ),
                    {
                        "week": week,
                        "due": START + dt.timedelta(days=7 * week),
                        "paid": START + dt.timedelta(days=7) if week == 1 else None,
                        "payment": 1 if week == 1 else None,
                    },
                )
        with pytest.raises(SchemaMismatch, match="behind"):
            check_schema(engine)

        upgrade(engine)
        assert current_revision(engine) == head_revision()
        check_schema(engine)
        assert_books_exact(engine)
        # The upgraded books serve the current code, old rows and new alike.
        # (PostgreSQL's identities start at 1: rows inserted with explicit ids by
        # hand would collide, so new rows here go through the code only on SQLite.)
        billing = BillingService(sql_storage(engine), FixedClock(START + dt.timedelta(days=14)))
        position = billing.get_position(1).position
        assert (position.paid_count, position.outstanding_amount) == (1, 5_390_000)
        assert billing.get_customer(1).email == "siti@example.com"
        if engine.dialect.name == "sqlite":
            paid = billing.make_payment(loan_id=1, amount=110_000, idempotency_key="k2")
            assert paid.payment.outstanding_after == 5_280_000
            assert_books_exact(engine)
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused(empty_url):
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        with pytest.raises(SchemaMismatch) as refused:
            check_schema(engine)
        assert "newer release" in str(refused.value)
    finally:
        engine.dispose()


def _insert_v1_book(
    conn, now: dt.datetime
) -> list[tuple[LoanTerms, int, list[tuple[int, dt.date]]]]:
    """Loans as the v1 schema (revision 0002) held them: a paid count, payments of
    whole installments. Returns each loan's terms, id and payments (weeks, date)."""
    conn.execute(
        text(
            "INSERT INTO customers (id, name, email, phone, created_at) "
            "VALUES (1, 'Siti', 'siti@example.com', '', :now)"
        ),
        {"now": now},
    )
    book = [
        # The canonical loan, three payments of one week and one of two.
        (
            LoanTerms.create(
                principal_amount=5_000_000, interest_rate_bps=1000, weeks=50, start_date=START
            ),
            1,
            [
                (1, START + WEEK),
                (1, START + 2 * WEEK),
                (1, START + 3 * WEEK),
                (2, START + 5 * WEEK),
            ],
        ),
        # A last installment that absorbs a remainder, paid off in two payments.
        (
            LoanTerms.create(
                principal_amount=1_000_001, interest_rate_bps=1234, weeks=7, start_date=START
            ),
            2,
            [(3, START + 3 * WEEK), (4, START + 7 * WEEK)],
        ),
        # Never paid.
        (
            LoanTerms.create(
                principal_amount=99_999, interest_rate_bps=0, weeks=3, start_date=START
            ),
            3,
            [],
        ),
    ]
    payment_id = 0
    for terms, loan_id, paid in book:
        weeks_paid = sum(weeks for weeks, _ in paid)
        position = Position(terms, terms.amount_through(weeks_paid), START + 7 * WEEK)
        conn.execute(
            text(
                "INSERT INTO loans (id, customer_id, principal_amount, interest_rate_bps, weeks,"
                " start_date, currency_code, delinquency_threshold, interest_amount,"
                " total_amount, weekly_payment, paid_count, outstanding_amount,"
                " last_payment_date, status, created_at, updated_at) VALUES (:id, 1, :p, :r,"
                " :n, :start, 'IDR', 2, :i, :t, :w, :paid, :out, :last, :status, :now, :now)"
            ),
            {
                "id": loan_id,
                "p": terms.principal_amount,
                "r": terms.interest_rate_bps,
                "n": terms.weeks,
                "start": START,
                "i": terms.interest_amount,
                "t": terms.total_amount,
                "w": terms.weekly_payment,
                "paid": weeks_paid,
                "out": position.outstanding_amount,
                "last": paid[-1][1] if paid else None,
                "status": position.status.value,
                "now": now,
            },
        )
        for line in terms.schedule():
            conn.execute(
                text(
                    "INSERT INTO installments (loan_id, week_number, due_date, amount,"
                    " principal_amount, interest_amount) VALUES (:loan, :week, :due, :a, :p, :i)"
                ),
                {
                    "loan": loan_id,
                    "week": line.week_number,
                    "due": line.due_date,
                    "a": line.amount,
                    "p": line.principal_amount,
                    "i": line.interest_amount,
                },
            )
        covered = 0
        for weeks, on in paid:
            payment_id += 1
            amount = terms.amount_through(covered + weeks) - terms.amount_through(covered)
            after = Position(terms, terms.amount_through(covered + weeks), on)
            conn.execute(
                text(
                    "INSERT INTO payments (id, loan_id, amount, currency_code, payment_date,"
                    " first_week, last_week, idempotency_key, outstanding_after, status_after,"
                    " created_at) VALUES (:id, :loan, :a, 'IDR', :on, :first, :last, :key,"
                    " :out, :status, :now)"
                ),
                {
                    "id": payment_id,
                    "loan": loan_id,
                    "a": amount,
                    "on": on,
                    "first": covered + 1,
                    "last": covered + weeks,
                    "key": f"k{payment_id}",
                    "out": after.outstanding_amount,
                    "status": after.status.value,
                    "now": now,
                },
            )
            conn.execute(
                text(
                    "UPDATE installments SET paid_date = :on, payment_id = :id"
                    " WHERE loan_id = :loan AND week_number BETWEEN :first AND :last"
                ),
                {
                    "on": on,
                    "id": payment_id,
                    "loan": loan_id,
                    "first": covered + 1,
                    "last": covered + weeks,
                },
            )
            covered += weeks
    return book


def _rows(conn, table: str) -> list[dict]:
    query = text(f"SELECT * FROM {table} ORDER BY 1, 2")
    return [dict(row._mapping) for row in conn.execute(query)]


def test_upgrade_to_v2_keeps_every_row_and_every_read(empty_url):
    """A database filled by the v1 schema: after the upgrade every old column of
    every row is unchanged, the new ones are what v2 defines (A, the payments'
    splits, the default settings), and reads at any date answer as before."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0002")
        now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        with engine.begin() as conn:
            book = _insert_v1_book(conn, now)
            before = {t: _rows(conn, t) for t in ("loans", "payments", "installments")}
        upgrade(engine)
        assert_books_exact(engine)
        with engine.connect() as conn:
            after = {t: _rows(conn, t) for t in ("loans", "payments", "installments")}
        for table, rows in before.items():
            assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table
        today = START + 8 * WEEK
        billing = BillingService(sql_storage(engine), FixedClock(today))
        for terms, loan_id, paid in book:
            loan = billing.get_loan(loan_id).loan
            assert loan.terms == terms  # DUE_ONLY and FULL: the v1 behaviour
            assert loan.paid_amount == terms.amount_through(sum(w for w, _ in paid))
            payments = billing.list_payments(loan_id=loan_id).items
            covered = 0
            for (weeks, on), payment in zip(paid, payments, strict=True):
                before_amount = terms.amount_through(covered)
                covered += weeks
                interest = terms.interest_part(terms.amount_through(covered)) - terms.interest_part(
                    before_amount
                )
                assert (payment.payment_date, payment.interest_amount) == (on, interest)
                assert payment.principal_amount == payment.amount - interest
                assert payment.kind is PaymentKind.REGULAR
            for day in range(0, 8 * 7 + 1, 3):
                on = START + dt.timedelta(days=day)
                weeks_by = sum(w for w, d in paid if d <= on)
                expected = Position(terms, terms.amount_through(weeks_by), on)
                assert billing.get_position(loan_id, on).position == expected, (loan_id, on)
    finally:
        engine.dispose()


def test_the_migrations_build_the_schema_the_code_declares(empty_url):
    """storage/tables.py and the migrations describe one schema: after an upgrade
    Alembic finds nothing to add, drop or alter (columns, types, nullability,
    indexes, constraints)."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = [
                d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)
            ]
        assert differences == []
    finally:
        engine.dispose()


def test_upgrade_to_reversals_and_write_offs_keeps_every_row(empty_url):
    """A database at the schema before reversals (0004) with loans, payments and
    events: after the upgrade every old column of every row is unchanged, every
    payment is live, no loan is written off, every loan and event is in history
    version 0, reads answer as before; and the upgraded books take reversals,
    write-offs and idempotent sweeps."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0002")
        now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        with engine.begin() as conn:
            book = _insert_v1_book(conn, now)
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO events (kind, loan_id, customer_id, week_number, business_date,"
                    " created_at, amount, due_date, missed_installments, overdue_amount,"
                    " days_past_due, outstanding_amount, currency_code, payment_id) VALUES"
                    " ('INSTALLMENT_MISSED', 1, 1, 4, :on, :now, 110000, :due, 1, 110000, 1,"
                    " 5170000, 'IDR', NULL),"
                    " ('PAYMENT_RECEIVED', 1, 1, 5, :on, :now, 220000, :due, 0, 0, 0,"
                    " 4950000, 'IDR', 4)"
                ),
                {"on": START + 5 * WEEK, "due": START + 4 * WEEK, "now": now},
            )
            tables = ("loans", "payments", "installments", "events")
            before = {t: _rows(conn, t) for t in tables}
        upgrade(engine, "0006")  # the events' numbers move out in 0007, tested on their own
        with engine.connect() as conn:
            after = {t: _rows(conn, t) for t in tables}
        for table, rows in before.items():
            assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table
        assert {row["history_version"] for row in after["loans"] + after["events"]} == {0}
        assert all(row["write_off_date"] is None for row in after["loans"])
        assert all(row["reversal_date"] is None for row in after["payments"])
        upgrade(engine)

        today = START + 8 * WEEK
        billing = BillingService(sql_storage(engine), FixedClock(today))
        for terms, loan_id, paid in book:
            for day in range(0, 8 * 7 + 1, 3):
                on = START + dt.timedelta(days=day)
                weeks_by = sum(w for w, d in paid if d <= on)
                expected = Position(terms, terms.amount_through(weeks_by), on)
                assert billing.get_position(loan_id, on).position == expected, (loan_id, on)
        # The canonical loan's second payment reversed: the later ones slide down.
        billing.reverse_payment(payment_id=2, reason="bounced", idempotency_key="r1")
        weeks = [p.settled_week_numbers for p in billing.list_payments(loan_id=1).items]
        assert weeks == [[1], [], [2], [3, 4]]
        assert billing.get_position(1, START + 2 * WEEK).position.paid_amount == 110_000
        billing.write_off_loan(loan_id=3, reason="gone", idempotency_key="w1")
        assert billing.get_loan(3).loan.write_off is not None
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        sweeps = SweepService(sql_storage(engine), FixedClock(today))
        first = sweeps.run(as_of=today)
        assert first.events_written > 0
        assert sweeps.run(as_of=today).events_written == 0
        with engine.connect() as conn:
            in_version_1 = (
                conn.execute(text("SELECT DISTINCT loan_id FROM events WHERE history_version = 1"))
                .scalars()
                .all()
            )
            total = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        assert in_version_1 == [1]  # the reversed loan's events, and its sweep events
        assert total == count + first.events_written
    finally:
        engine.dispose()


def test_upgrade_to_the_journal_posts_what_the_books_already_hold(empty_url):
    """Loans with payments, a payoff, reversals (of a payment, a payoff and a
    recovery), a write-off and recoveries, in the schema before the journal
    (0005): the upgrade posts their entries, VerifyBooks agrees at once, and
    each loan's balances and the trial balance are those the live postings gave."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        clock = FixedClock(START)
        billing = BillingService(sql_storage(engine), clock)
        ledger = LedgerService(sql_storage(engine), clock)
        customer = billing.create_customer(name="Siti", email="s@example.com", phone="").id

        def loan(**settings) -> int:
            return lend_canonical(billing, customer, START, **settings).id

        keys = iter(f"k{n}" for n in range(100))
        paid, waived, written = loan(), loan(payoff_interest=PayoffInterest.WAIVE_UNDUE), loan()
        for week in (1, 2, 3):
            clock.current = START + week * WEEK
            ids = [
                billing.make_payment(loan_id=i, amount=110_000, idempotency_key=next(keys))
                for i in (paid, waived, written)
            ]
        billing.reverse_payment(payment_id=ids[0].payment.id, reason="b", idempotency_key="r1")
        clock.current = START + 3 * WEEK + dt.timedelta(days=2)
        quote = billing.get_payoff_quote(loan_id=waived)
        payoff = billing.pay_off_loan(
            loan_id=waived, amount=quote.payoff_amount, idempotency_key="off"
        )
        billing.reverse_payment(payment_id=payoff.payment.id, reason="b", idempotency_key="r2")
        billing.pay_off_loan(loan_id=waived, amount=quote.payoff_amount, idempotency_key="off2")
        billing.write_off_loan(loan_id=written, reason="gone", idempotency_key="w")
        first = billing.make_payment(loan_id=written, amount=1_234, idempotency_key="rec1")
        billing.make_payment(loan_id=written, amount=99, idempotency_key="rec2")
        billing.reverse_payment(payment_id=first.payment.id, reason="b", idempotency_key="r3")
        live = ledger.trial_balance()
        with engine.connect() as conn:
            by_loan = conn.execute(text("SELECT loan_id FROM journal_entries")).scalars().all()
        assert ledger.verify_books().agree

        downgrade(engine, "0005")  # what a database of the release before holds
        upgrade(engine)
        report = ledger.verify_books()
        assert (report.loans_checked, report.differences) == (3, [])
        assert ledger.trial_balance() == live
        for day in range(0, 40):
            trial = ledger.trial_balance(START + dt.timedelta(days=day))
            assert trial.debit_total == trial.credit_total
        with engine.connect() as conn:
            posted = conn.execute(text("SELECT loan_id FROM journal_entries")).scalars().all()
        # A reversed payment posts its entry and its mirror, as it did when live.
        assert sorted(posted) == sorted(by_loan)
        with pytest.raises(Exception, match="immutable"), engine.begin() as conn:
            conn.execute(text("DELETE FROM journal_entries"))
    finally:
        engine.dispose()


def test_upgrade_moves_the_event_numbers_out_and_numbering_goes_on(empty_url):
    """Events numbered and pending in the schema before (0006): after the upgrade
    each keeps its number, the pending ones are still pending, reads return the
    same events, and the next numbering goes on without a gap."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        billing = BillingService(sql_storage(engine), FixedClock(START + WEEK))
        customer = billing.create_customer(name="Siti", email="s@example.com", phone="").id
        loans = [lend_canonical(billing, customer, START).id for _ in range(2)]
        number_all(engine)
        billing.make_payment(loan_id=loans[1], amount=110_000, idempotency_key="late")
        with engine.connect() as conn:
            numbered = events_after(conn, 0, limit=100)
        assert [e.sequence for e in numbered] == [1, 2]

        downgrade(engine, "0006")  # what a database of the release before holds
        with engine.connect() as conn:
            old = conn.execute(text("SELECT id, sequence FROM events ORDER BY id")).all()
        assert [tuple(row) for row in old] == [(1, 1), (2, 2), (3, None)]

        upgrade(engine)
        with engine.connect() as conn:
            assert events_after(conn, 0, limit=100) == numbered
            pending = conn.execute(text("SELECT event_id FROM pending_events")).scalars().all()
        assert pending == [3]
        assert number_all(engine).count == 1
        with engine.connect() as conn:
            after = events_after(conn, 0, limit=100)
        assert [(e.sequence, e.kind.value) for e in after] == [
            (1, "LOAN_CREATED"),
            (2, "LOAN_CREATED"),
            (3, "PAYMENT_RECEIVED"),
        ]
        assert_books_exact(engine)
    finally:
        engine.dispose()
