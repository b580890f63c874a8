"""Contention, retries, deadlines and cancellation through a real channel: the
books stay exact and every answer is precise."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify
from microfin.loanbilling.v1 import notification_service_pb2_grpc

from loanbilling.config import Settings
from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, pay, row_counts
from tests.support.books import assert_books_exact

WEEK = dt.timedelta(days=7)
POOL_SIZE = Settings().db_pool_size  # the test server's connections for calls


def attempt(stub, loan_id: int, key: str, amount: int = 110_000, timeout: float = 30):
    try:
        return stub.MakePayment(
            api.MakePaymentRequest(loan_id=loan_id, amount=amount, idempotency_key=key),
            timeout=timeout,
        )
    except grpc.RpcError as error:
        return error.code()


@pytest.mark.parametrize("callers", [64, pytest.param(256, marks=pytest.mark.slow)])
def test_concurrent_payments_on_one_loan(callers, stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    clock.current = START + 5 * WEEK  # weeks 1-4 overdue, week 5 current: 5 payable
    with ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(lambda n: attempt(stub, loan_id, f"k{n}"), range(callers)))
    accepted = [o for o in outcomes if isinstance(o, api.MakePaymentResponse)]
    refused = Counter(o for o in outcomes if isinstance(o, grpc.StatusCode))
    assert len(accepted) == 5
    assert refused == {grpc.StatusCode.FAILED_PRECONDITION: callers - 5}
    assert sorted(w for o in accepted for w in o.payment.settled_week_numbers) == [1, 2, 3, 4, 5]
    assert_books_exact(engine)


@pytest.mark.parametrize("loans", [16, pytest.param(200, marks=pytest.mark.slow)])
def test_concurrent_payments_on_many_loans(loans, stub, engine, clock):
    customer_id = create_customer(stub)
    ids = [create_canonical_loan(stub, customer_id, START).id for _ in range(loans)]
    clock.current = START + 3 * WEEK  # 3 payable per loan
    jobs = [(loan_id, n) for loan_id in ids for n in range(6)]
    with ThreadPoolExecutor(max_workers=64) as pool:
        outcomes = list(pool.map(lambda job: attempt(stub, job[0], f"{job[0]}-{job[1]}"), jobs))
    assert sum(isinstance(o, api.MakePaymentResponse) for o in outcomes) == loans * 3
    assert Counter(o for o in outcomes if isinstance(o, grpc.StatusCode)) == {
        grpc.StatusCode.FAILED_PRECONDITION: loans * 3
    }
    assert_books_exact(engine)


@pytest.mark.parametrize("clients", [20, pytest.param(100, marks=pytest.mark.slow)])
def test_clients_retrying_one_key_record_one_payment(clients, server, engine, clock):
    from microfin.loanbilling.v1 import loan_service_pb2_grpc

    channels = [grpc.insecure_channel(server.address) for _ in range(clients)]
    stubs = [loan_service_pb2_grpc.LoanServiceStub(c) for c in channels]
    loan_id = create_canonical_loan(stubs[0], create_customer(stubs[0]), START).id
    clock.current = START + WEEK
    barrier = threading.Barrier(clients)

    def retry(stub):
        barrier.wait()
        return attempt(stub, loan_id, "the-same-key")

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            answers = list(pool.map(retry, stubs))
    finally:
        for channel in channels:
            channel.close()
    assert all(isinstance(a, api.MakePaymentResponse) for a in answers), answers
    assert len({a.payment.SerializeToString() for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert row_counts(engine)["payments"] == 1
    assert_books_exact(engine)


@contextmanager
def _holding(engine, loan_id: int):
    """Keeps a payment on `loan_id` waiting: SQLite's write lock, or the loan's row
    lock on PostgreSQL (what a payment's write waits for there)."""
    sqlite = engine.dialect.name == "sqlite"
    blocker = engine.raw_connection()
    try:
        if sqlite:
            blocker.driver_connection.execute("BEGIN IMMEDIATE")
        else:
            blocker.cursor().execute("SELECT 1 FROM loans WHERE id = %s FOR UPDATE", (loan_id,))
        yield
    finally:
        if sqlite:
            blocker.driver_connection.execute("ROLLBACK")
        else:
            blocker.rollback()
        blocker.close()


def test_deadline_shorter_than_the_call_leaves_no_half_payment(stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    with _holding(engine, loan_id):
        with pytest.raises(grpc.RpcError) as late:
            stub.MakePayment(
                api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="slow"),
                timeout=0.3,
            )
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server may still finish the work it had started: whole, or not at all.
    time.sleep(0.5)
    assert row_counts(engine)["payments"] in (0, 1)
    assert_books_exact(engine)
    # The client's retry with the same key settles which.
    retried = pay(stub, loan_id, 110_000, key="slow")
    assert list(retried.payment.settled_week_numbers) == [1]
    assert row_counts(engine)["payments"] == 1


def test_cancelled_call_leaves_no_half_payment(stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    with _holding(engine, loan_id):
        future = stub.MakePayment.future(
            api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="cancel")
        )
        time.sleep(0.3)
        assert future.cancel()
    time.sleep(0.5)
    assert_books_exact(engine)
    assert pay(stub, loan_id, 110_000, key="cancel").payment.settled_week_numbers == [1]
    assert row_counts(engine)["payments"] == 1


def test_calls_cut_short_leave_the_pool_whole(stub, engine, clock):
    """More calls cut short by their deadline than the server has connections; then
    as many calls at once as it has connections all answer: none was lost."""
    customer_id = create_customer(stub)
    held = create_canonical_loan(stub, customer_id, START).id
    others = [create_canonical_loan(stub, customer_id, START).id for _ in range(POOL_SIZE)]
    with _holding(engine, held):
        for n in range(POOL_SIZE + 2):
            with pytest.raises(grpc.RpcError) as late:
                stub.MakePayment(
                    api.MakePaymentRequest(loan_id=held, amount=110_000, idempotency_key=f"k{n}"),
                    timeout=0.2,
                )
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    clock.current = START + WEEK
    with ThreadPoolExecutor(max_workers=POOL_SIZE) as callers:
        answers = list(callers.map(lambda n: attempt(stub, n, f"once-{n}"), others))
    assert all(isinstance(a, api.MakePaymentResponse) for a in answers), answers
    assert_books_exact(engine)


def test_calls_waiting_for_the_database_hold_up_no_call_that_does_not(server, stub, engine, clock):
    """As many payments as the server has connections (PostgreSQL) or worker
    threads (SQLite), all waiting for one loan's lock: the health check still
    answers at once; one call more, on another loan, waits for a connection, then
    gets a status to retry on (UNAVAILABLE: none came within the pool's 3 s; on
    SQLite, its own deadline first), never INTERNAL; and the payments all answer
    once the lock goes (one accepted, the rest refused: week 2 is not due)."""
    customer_id = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer_id, START).id
    other = create_canonical_loan(stub, customer_id, START).id
    with (
        grpc.insecure_channel(server.address) as channel,
        ThreadPoolExecutor(max_workers=POOL_SIZE) as callers,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        with _holding(engine, loan_id):
            waiting = [
                callers.submit(attempt, stub, loan_id, f"wait-{n}", timeout=10)
                for n in range(POOL_SIZE)
            ]
            time.sleep(0.5)
            assert not any(w.done() for w in waiting)
            for _ in range(5):
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as beyond:
                stub.GetOutstanding(api.GetOutstandingRequest(loan_id=other), timeout=3.5)
            expected = (
                grpc.StatusCode.DEADLINE_EXCEEDED
                if engine.dialect.name == "sqlite"
                else grpc.StatusCode.UNAVAILABLE
            )
            assert beyond.value.code() == expected, beyond.value
        outcomes = [w.result() for w in waiting]
    assert sum(isinstance(o, api.MakePaymentResponse) for o in outcomes) == 1
    assert outcomes.count(grpc.StatusCode.FAILED_PRECONDITION) == POOL_SIZE - 1
    assert_books_exact(engine)


def test_cancelled_streams_leak_nothing(server, channel, stub):
    create_canonical_loan(stub, create_customer(stub), START)
    streams = notification_service_pb2_grpc.NotificationServiceStub(channel)
    opened = [
        streams.StreamNotifications(notify.StreamNotificationsRequest(), timeout=30)
        for _ in range(25)
    ]
    hub = server.app.hub
    deadline = time.monotonic() + 10
    while hub.subscribers < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.subscribers == 25
    for stream in opened:
        stream.cancel()
    deadline = time.monotonic() + 10
    while hub.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.subscribers == 0
    # Short deadlines end streams too.
    with pytest.raises(grpc.RpcError) as expired:
        for _ in streams.StreamNotifications(notify.StreamNotificationsRequest(), timeout=0.3):
            pass
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.3)
    assert hub.subscribers == 0
