"""Fixtures shared by every tier: databases on SQLite and PostgreSQL, a business
clock the test sets, and a real in-process gRPC server with a stub."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import loan_service_pb2_grpc

from loanbilling.clock import FixedClock
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine
from loanbilling.storage.unit_of_work import sql_storage
from tests.support.databases import PostgresDatabases, require_postgres, sqlite_url
from tests.support.server import ServerThread

# The canonical loan starts on a Monday; tests move the business date along it.
START = dt.date(2026, 1, 5)


@pytest.fixture(scope="session")
def postgres_databases():
    require_postgres()
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


# PostgreSQL writes payments and new loans in one statement; the portable write
# path (row lock, a statement per step) runs there too for the tests that write
# through BillingService or a server: "postgresql-portable".
PORTABLE_ON_POSTGRESQL = "postgresql-portable"


def pytest_collection_modifyitems(config, items):
    """The portable variant only for tests that write through BillingService or a server."""
    kept = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (
            callspec is not None
            and callspec.params.get("database_url") == PORTABLE_ON_POSTGRESQL
            and not {"billing", "server"} & set(item.fixturenames)
        ):
            continue
        kept.append(item)
    items[:] = kept


@pytest.fixture(params=["sqlite", "postgresql", PORTABLE_ON_POSTGRESQL])
def database_url(request, tmp_path):
    """A migrated, empty database of this test's own, on each backend."""
    if request.param == "sqlite":
        with sqlite_url(tmp_path) as url:
            yield url
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create()
    yield url
    databases.release(url)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, pool_size=8)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def one_statement(request, database_url) -> bool | None:
    """The write path: None for the database's default, False for the portable one."""
    callspec = getattr(request.node, "callspec", None)
    chosen = callspec.params.get("database_url") if callspec else None
    return False if chosen == PORTABLE_ON_POSTGRESQL else None


@pytest.fixture
def storage(engine, one_statement):
    return sql_storage(engine, one_statement=one_statement)


@pytest.fixture
def billing(storage, clock):
    return BillingService(storage, clock)


@pytest.fixture
def server(engine, clock, one_statement):
    running = ServerThread(engine, clock, one_statement=one_statement).start()
    yield running
    running.stop()


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


@pytest.fixture
def stub(channel):
    return loan_service_pb2_grpc.LoanServiceStub(channel)
