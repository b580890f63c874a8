"""The pool's driver on PostgreSQL: psycopg 3, which prepares the statements a
connection runs again and again, so PostgreSQL plans a payment's statements
once per connection (docs/benchmarks.md); psycopg2 where the URL names it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from loanbilling.clock import FixedClock
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine
from loanbilling.storage.unit_of_work import sql_storage
from tests.support.api import lend_canonical, new_key

pytestmark = pytest.mark.postgres

START = dt.date(2026, 1, 5)


@pytest.fixture
def pg_url(postgres_databases):
    url = postgres_databases.create()
    yield url
    postgres_databases.release(url)


def _pay_weeks(engine, weeks: int) -> int:
    billing = BillingService(sql_storage(engine), FixedClock(START + dt.timedelta(days=7 * 50)))
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    loan = lend_canonical(billing, customer, START)
    for _ in range(weeks):
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key=new_key())
    return loan.id


def _prepared(engine) -> list[str]:
    """The statements prepared on the pool's one connection (its own session)."""
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars())


def test_a_plain_url_pools_psycopg_3_and_the_payment_runs_prepared(pg_url):
    engine = make_engine(pg_url, pool_size=1)  # one connection: every call on it
    try:
        assert engine.dialect.driver == "psycopg"
        _pay_weeks(engine, 8)
        prepared = _prepared(engine)
        # The slot read, the id draw and the one CTE, each parsed and planned once.
        assert any(s.lstrip().startswith("WITH moved AS") for s in prepared), prepared
        assert any("nextval" in s for s in prepared), prepared
        assert any("key_payment_id" in s for s in prepared), prepared
    finally:
        engine.dispose()


def test_a_payments_long_statement_is_rewritten_once_not_per_call(pg_url, monkeypatch):
    # psycopg 3 memoizes the %(name)s -> $n rewrite of short statements only and
    # calls _query2pg_nocache for the others on every execute; the engine widens
    # the memo to ours (storage.database.cache_long_statements).
    from psycopg import _queries

    uncached = []
    rewrite = _queries._query2pg_nocache
    monkeypatch.setattr(
        _queries, "_query2pg_nocache", lambda *a: uncached.append(a[0]) or rewrite(*a)
    )
    engine = make_engine(pg_url, pool_size=1)
    try:
        _pay_weeks(engine, 6)
        assert uncached == []
    finally:
        engine.dispose()


def test_a_url_naming_psycopg2_keeps_it_and_prepares_nothing(pg_url):
    url = make_url(pg_url).set(drivername="postgresql+psycopg2")
    engine = make_engine(url.render_as_string(hide_password=False), pool_size=1)
    try:
        assert engine.dialect.driver == "psycopg2"
        loan_id = _pay_weeks(engine, 8)
        assert _prepared(engine) == []
        with engine.connect() as conn:
            paid = conn.execute(
                text("SELECT paid_count FROM loans WHERE id = :id"), {"id": loan_id}
            ).scalar_one()
        assert paid == 8
    finally:
        engine.dispose()
