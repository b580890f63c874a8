"""PostgreSQL stops under payment load and comes back: the service fails fast
with UNAVAILABLE, reports NOT_SERVING, recovers without a restart, and loses
nothing it acknowledged."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import loan_service_pb2_grpc
from sqlalchemy import select

from loanbilling.storage.database import make_engine
from loanbilling.storage.tables import payments
from tests.e2e.processes import ServerProcess, free_port, migrate
from tests.support.api import create_canonical_loan, create_customer
from tests.support.books import assert_books_exact
from tests.support.private_postgres import PrivatePostgres

pytestmark = pytest.mark.timeout(240)
DEADLINE_S = 5.0
# Loans the load cannot pay off, whatever its speed and today's date: 520 weekly
# installments of 110,000, every one of them due already.
LONG_AGO = dt.date.today() - dt.timedelta(weeks=521)


@pytest.fixture
def private_postgres():
    pg = PrivatePostgres(free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def health(channel) -> int | None:
    try:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(), timeout=2)
            .status
        )
    except grpc.RpcError:
        return None


def wait_until(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("workers", "outages"), [(4, 1), pytest.param(16, 3, marks=pytest.mark.slow)]
)
def test_database_outage_under_load(workers, outages, private_postgres, tmp_path):
    url = private_postgres.create_database("loanbilling")
    migrate(url)
    with ServerProcess(url, tmp_path, "--sweep-interval-s", "0") as server:
        channel = grpc.insecure_channel(server.address)
        stub = loan_service_pb2_grpc.LoanServiceStub(channel)
        customer_id = create_customer(stub)
        loans = [
            create_canonical_loan(
                stub, customer_id, LONG_AGO, weeks=520, principal_amount=52_000_000
            ).id
            for _ in range(5 * workers)
        ]

        outcomes: list[tuple[str, int, grpc.StatusCode, float]] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            n = 0
            while not stop.is_set():
                key = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}"
                loan_id = loans[(worker * 7 + n) % len(loans)]
                started = time.monotonic()
                try:
                    stub.MakePayment(
                        api.MakePaymentRequest(
                            loan_id=loan_id, amount=110_000, idempotency_key=key
                        ),
                        timeout=DEADLINE_S,
                    )
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                outcomes.append((key, loan_id, code, time.monotonic() - started))
                n += 1
                if code != grpc.StatusCode.OK:
                    time.sleep(0.05)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(outages):
                time.sleep(2)
                before_outage = len(outcomes)
                private_postgres.stop("immediate")
                not_serving_after = wait_until(
                    lambda: health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING, 15
                )
                time.sleep(2)  # load keeps coming during the outage
                private_postgres.start()
                serving_after = wait_until(
                    lambda: health(channel) == health_pb2.HealthCheckResponse.SERVING, 30
                )
                recovered = len(outcomes)
                wait_until(lambda n=recovered: len(outcomes) > n + 20, 30)  # payments flow again
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)

        codes = Counter(code for _, _, code, _ in outcomes)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
        assert codes[grpc.StatusCode.UNAVAILABLE] > 0, "the outage was not noticed"
        slowest_refusal = max(
            seconds for _, _, code, seconds in outcomes if code == grpc.StatusCode.UNAVAILABLE
        )
        assert slowest_refusal < DEADLINE_S  # failed fast, never hung to the deadline
        assert before_outage > 0 and not_serving_after < 15 and serving_after < 30

        # A refused payment may have committed just before the connection died:
        # retrying with its key settles the question either way, and never pays twice.
        for key, loan_id, code, _ in outcomes:
            if code == grpc.StatusCode.UNAVAILABLE:
                stub.MakePayment(
                    api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key=key),
                    timeout=DEADLINE_S,
                )
        channel.close()

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(payments.c.idempotency_key)).scalars())
        acknowledged = {key for key, _, code, _ in outcomes if code == grpc.StatusCode.OK}
        assert acknowledged <= stored, "an acknowledged payment was lost"
        figures = assert_books_exact(engine)
    finally:
        engine.dispose()
    print(
        f"\noutage: {len(outcomes)} payments tried, {codes[grpc.StatusCode.OK]} OK, "
        f"{codes[grpc.StatusCode.UNAVAILABLE]} UNAVAILABLE (slowest {slowest_refusal:.2f}s), "
        f"NOT_SERVING after {not_serving_after:.1f}s, SERVING again {serving_after:.1f}s "
        f"after restart; {figures}"
    )
