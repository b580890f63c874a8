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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A migrated, empty database of this test's own, on each backend."""
    if request.param == "sqlite":
        with sqlite_url(tmp_path) as url:
            yield url
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create()
    yield url
    databases.drop(url)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, pool_size=8)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def billing(engine, clock):
    return BillingService(engine, clock)


@pytest.fixture
def server(engine, clock):
    running = ServerThread(engine, clock).start()
    yield running
    running.stop()


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


@pytest.fixture
def stub(channel):
    return loan_service_pb2_grpc.LoanServiceStub(channel)
