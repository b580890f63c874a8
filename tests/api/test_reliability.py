"""Contention, retries, deadlines and cancellation through a real channel: the
books stay exact and every answer is precise."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify
from microfin.loanbilling.v1 import notification_service_pb2_grpc

from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, pay, row_counts
from tests.support.books import assert_books_exact

WEEK = dt.timedelta(days=7)


def attempt(stub, loan_id: int, key: str, amount: int = 110_000):
    try:
        return stub.MakePayment(
            api.MakePaymentRequest(loan_id=loan_id, amount=amount, idempotency_key=key),
            timeout=30,
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


def _hold_sqlite_write_lock(engine):
    blocker = engine.raw_connection()
    blocker.driver_connection.execute("BEGIN IMMEDIATE")
    return blocker


def test_deadline_shorter_than_the_call_leaves_no_half_payment(database_url, stub, engine, clock):
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to make the call outlive its deadline")
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    blocker = _hold_sqlite_write_lock(engine)
    try:
        with pytest.raises(grpc.RpcError) as late:
            stub.MakePayment(
                api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="slow"),
                timeout=0.3,
            )
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        blocker.driver_connection.execute("ROLLBACK")
        blocker.close()
    # The server may still finish the work it had started: whole, or not at all.
    time.sleep(0.5)
    assert row_counts(engine)["payments"] in (0, 1)
    assert_books_exact(engine)
    # The client's retry with the same key settles which.
    retried = pay(stub, loan_id, 110_000, key="slow")
    assert list(retried.payment.settled_week_numbers) == [1]
    assert row_counts(engine)["payments"] == 1


def test_cancelled_call_leaves_no_half_payment(database_url, stub, engine, clock):
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to keep the call in flight")
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    blocker = _hold_sqlite_write_lock(engine)
    try:
        future = stub.MakePayment.future(
            api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="cancel")
        )
        time.sleep(0.3)
        assert future.cancel()
    finally:
        blocker.driver_connection.execute("ROLLBACK")
        blocker.close()
    time.sleep(0.5)
    assert_books_exact(engine)
    assert pay(stub, loan_id, 110_000, key="cancel").payment.settled_week_numbers == [1]
    assert row_counts(engine)["payments"] == 1


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
