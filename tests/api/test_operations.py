"""Health, database outages and graceful shutdown, against a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api

from tests.support.api import create_canonical_loan, create_customer, pay, row_counts

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_status(channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_health_reports_serving(channel):
    wait_for(lambda: health_status(channel) == SERVING)
    assert health_status(channel, "microfin.loanbilling.v1.LoanService") == SERVING


def test_database_outage_and_recovery(request, database_url, channel, stub, clock):
    if not database_url.startswith("postgresql"):
        pytest.skip("an outage is simulated by dropping the PostgreSQL database")
    databases = request.getfixturevalue("postgres_databases")
    customer_id = create_customer(stub)
    wait_for(lambda: health_status(channel) == SERVING)

    databases.drop(database_url)
    wait_for(lambda: health_status(channel) == NOT_SERVING)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as outage:
        stub.GetCustomer(api.GetCustomerRequest(id=customer_id), timeout=10)
    assert outage.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in outage.value.details()
    assert time.monotonic() - started < 10

    databases.recreate(database_url)
    wait_for(lambda: health_status(channel) == SERVING)
    assert create_customer(stub) == 1  # a fresh database, served without a restart


def test_graceful_shutdown_finishes_in_flight_calls(database_url, engine, server, stub, clock):
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to keep a payment in flight")
    loan_id = create_canonical_loan(stub, create_customer(stub), clock.current).id

    # Hold the write lock so that the payment below waits inside the server.
    blocker = engine.raw_connection()
    blocker.driver_connection.execute("BEGIN IMMEDIATE")
    outcome = {}

    def in_flight():
        try:
            outcome["response"] = pay(stub, loan_id, 110_000, key="in-flight")
        except grpc.RpcError as error:
            outcome["error"] = error

    caller = threading.Thread(target=in_flight)
    caller.start()
    time.sleep(0.5)
    stopping = asyncio.run_coroutine_threadsafe(server.app.stop(grace=10), server.loop)
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as refused:
        create_customer(stub)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    blocker.driver_connection.execute("ROLLBACK")
    blocker.close()
    caller.join(10)
    stopping.result(15)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["response"].payment.settled_week_numbers == [1]
    assert row_counts(engine)["payments"] == 1
    server.app = None  # already stopped


def test_liveness_stays_serving_whatever_the_database(channel):
    assert health_status(channel, "liveness") == SERVING
