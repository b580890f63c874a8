"""Upgrading a database created by the first migration keeps every row, on both
databases; a schema newer than the code is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from loanbilling.clock import FixedClock
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine
from loanbilling.storage.migrate import (
    SchemaMismatch,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from loanbilling.storage.unit_of_work import sql_storage
from tests.support.books import assert_books_exact
from tests.support.databases import sqlite_url

START = dt.date(2026, 1, 5)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        with sqlite_url(tmp_path, migrated=False) as url:
            yield url
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create(migrated=False)
    yield url
    databases.drop(url)


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
