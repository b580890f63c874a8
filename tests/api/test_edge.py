"""The edge of the server: tokens and roles, TLS and mutual TLS, request ids,
a default deadline, metrics and structured logs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import (
    analytics_service_pb2,
    ledger_service_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify

from loanbilling.api.analytics_servicer import AnalyticsServicer
from loanbilling.api.auth import Role, TokenTable
from loanbilling.api.ledger_servicer import LedgerServicer
from loanbilling.api.loan_servicer import LoanServicer
from loanbilling.api.notification_servicer import NotificationServicer
from loanbilling.config import Settings
from loanbilling.logs import JsonFormatter
from loanbilling.server import start
from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, new_key, pay
from tests.support.certs import make_certificates
from tests.support.server import ServerThread

TOKENS = {
    "tokens": [
        {"name": "ops", "role": "admin", "token": "admin-secret-token"},
        {"name": "collections", "role": "collector", "token": "collector-secret-token"},
        # Kept as a digest only: the file then holds no usable secret.
        {
            "name": "dashboard",
            "role": "reader",
            "sha256": hashlib.sha256(b"reader-secret-token").hexdigest(),
        },
    ]
}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def guarded(engine, clock):
    running = ServerThread(engine, clock, auth_tokens=json.dumps(TOKENS)).start()
    yield running
    running.stop()


def code_of(call, *args, **kwargs) -> grpc.StatusCode:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_tokens_and_roles(guarded, caplog):
    caplog.set_level(logging.DEBUG)
    with grpc.insecure_channel(guarded.address) as channel:
        stub = loan_service_pb2_grpc.LoanServiceStub(channel)
        request = api.CreateCustomerRequest(name="Siti", email="siti@example.com")
        assert code_of(stub.CreateCustomer, request) == grpc.StatusCode.UNAUTHENTICATED
        assert (
            code_of(stub.CreateCustomer, request, metadata=bearer("wrong"))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert (
            code_of(stub.CreateCustomer, request, metadata=(("authorization", "Basic eA=="),))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        with pytest.raises(grpc.RpcError) as denied:
            stub.CreateCustomer(request, metadata=bearer("collector-secret-token"))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "collections has role collector; this call needs admin" in denied.value.details()

        admin = bearer("admin-secret-token")
        customer_id = stub.CreateCustomer(request, metadata=admin).customer.id
        loan = api.CreateLoanRequest(
            customer_id=customer_id,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            request_id=new_key("loan"),
        )
        loan_id = stub.CreateLoan(loan, metadata=admin).loan.id
        payment = api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="k")
        reader, collector = bearer("reader-secret-token"), bearer("collector-secret-token")
        assert code_of(stub.MakePayment, payment, metadata=reader) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert code_of(stub.MakePayment, payment, metadata=collector) == grpc.StatusCode.OK
        quote = api.GetPayoffQuoteRequest(loan_id=loan_id)
        assert code_of(stub.GetPayoffQuote, quote, metadata=reader) == grpc.StatusCode.OK
        payoff = api.PayOffLoanRequest(loan_id=loan_id, amount=1, idempotency_key="o")
        assert code_of(stub.PayOffLoan, payoff, metadata=reader) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert code_of(stub.PayOffLoan, payoff, metadata=collector) == (
            grpc.StatusCode.INVALID_ARGUMENT  # let in: 1 is not the payoff amount
        )
        read = api.GetOutstandingRequest(loan_id=loan_id)
        for who in (reader, collector, admin):  # roles nest
            assert code_of(stub.GetOutstanding, read, metadata=who) == grpc.StatusCode.OK
        assert code_of(stub.GetOutstanding, read) == grpc.StatusCode.UNAUTHENTICATED
        sweep = api.RunDelinquencySweepRequest()
        assert code_of(stub.RunDelinquencySweep, sweep, metadata=collector) == (
            grpc.StatusCode.PERMISSION_DENIED
        )

        streams = notification_service_pb2_grpc.NotificationServiceStub(channel)

        def first_message(metadata=()):
            stream = streams.StreamNotifications(
                notify.StreamNotificationsRequest(), metadata=metadata, timeout=0.5
            )
            try:
                next(iter(stream))
            finally:
                stream.cancel()

        assert code_of(first_message) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(first_message, reader) == grpc.StatusCode.DEADLINE_EXCEEDED  # let in

        # Health stays open: probes carry no token.
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status in (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.UNKNOWN,
        )
    assert all(
        secret not in caplog.text
        for secret in ("admin-secret-token", "collector-secret-token", "reader-secret-token")
    )


# Every RPC and the role it needs (roles nest: admin > collector > reader). A new
# RPC must be listed here, and in the README's roles table.
ROLES = {
    "LoanService": {
        "CreateCustomer": Role.ADMIN,
        "GetCustomer": Role.READER,
        "CreateLoan": Role.ADMIN,
        "GetLoan": Role.READER,
        "ListLoans": Role.READER,
        "GetOutstanding": Role.READER,
        "IsDelinquent": Role.READER,
        "MakePayment": Role.COLLECTOR,
        "GetPayoffQuote": Role.READER,
        "PayOffLoan": Role.COLLECTOR,
        "ReversePayment": Role.ADMIN,
        "WriteOffLoan": Role.ADMIN,
        "ListPayments": Role.READER,
        "RunDelinquencySweep": Role.ADMIN,
    },
    "NotificationService": {"StreamNotifications": Role.READER},
    "AnalyticsService": {"GetPortfolioSummary": Role.READER},
    "LedgerService": {
        "ListJournalEntries": Role.READER,
        "GetTrialBalance": Role.READER,
        "VerifyBooks": Role.ADMIN,
    },
}


@pytest.mark.parametrize(
    ("module", "servicer"),
    [
        (loan_service_pb2, LoanServicer),
        (notification_service_pb2, NotificationServicer),
        (analytics_service_pb2, AnalyticsServicer),
        (ledger_service_pb2, LedgerServicer),
    ],
)
def test_every_rpc_needs_its_role(module, servicer):
    (service,) = module.DESCRIPTOR.services_by_name.values()
    for method in service.methods:
        assert method.name in ROLES[service.name], f"{method.name}: add it to ROLES"
        needed = getattr(servicer, method.name).required_role
        assert needed is ROLES[service.name][method.name], method.name


def test_request_ids_are_echoed(stub):
    _, call = stub.CreateCustomer.with_call(
        api.CreateCustomerRequest(name="Siti", email="siti@example.com"),
        metadata=(("x-request-id", "req-42"),),
    )
    assert ("x-request-id", "req-42") in call.trailing_metadata()
    _, call = stub.GetCustomer.with_call(api.GetCustomerRequest(id=1))
    generated = dict(call.trailing_metadata())["x-request-id"]
    assert len(generated) == 32
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetCustomer(api.GetCustomerRequest(id=99), metadata=(("x-request-id", "req-43"),))
    assert ("x-request-id", "req-43") in refused.value.trailing_metadata()


def test_default_deadline_applies_when_the_client_sets_none(database_url, engine, clock):
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to make the call slow")
    running = ServerThread(engine, clock, default_deadline_s=0.3).start()
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = loan_service_pb2_grpc.LoanServiceStub(channel)
            customer_id = create_customer(stub)
            blocker = engine.raw_connection()
            blocker.driver_connection.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(grpc.RpcError) as slow:
                    stub.CreateLoan(
                        api.CreateLoanRequest(
                            customer_id=customer_id,
                            principal_amount=1_000,
                            interest_rate_bps=0,
                            weeks=1,
                            request_id=new_key("loan"),
                        )
                    )
            finally:
                blocker.driver_connection.execute("ROLLBACK")
                blocker.close()
            assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "default deadline" in slow.value.details()
    finally:
        running.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metrics_over_http(engine, clock):
    port = _free_port()
    running = ServerThread(engine, clock, metrics_listen=f"127.0.0.1:{port}").start()
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = loan_service_pb2_grpc.LoanServiceStub(channel)
            loan_id = create_canonical_loan(stub, create_customer(stub), START).id
            pay(stub, loan_id, 110_000)
            with pytest.raises(grpc.RpcError):
                pay(stub, loan_id, 1)
            stream = notification_service_pb2_grpc.NotificationServiceStub(
                channel
            ).StreamNotifications(notify.StreamNotificationsRequest(), timeout=10)
            exposition = ""
            for _ in range(50):  # until the stream is counted
                exposition = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
                if "loanbilling_open_streams 1.0" in exposition:
                    break
                asyncio.run(asyncio.sleep(0.05))
            stream.cancel()
    finally:
        running.stop()
    for line in (
        'loanbilling_rpc_requests_total{code="OK",method="CreateCustomer"}',
        'loanbilling_rpc_requests_total{code="FAILED_PRECONDITION",method="MakePayment"}',
        'loanbilling_payments_total{outcome="accepted"}',
        'loanbilling_payments_total{outcome="NOTHING_PAYABLE"}',
        'loanbilling_rpc_duration_seconds_bucket{le="0.1",method="MakePayment"}',
        "loanbilling_open_streams 1.0",
        "loanbilling_db_pool_checked_out",
        "loanbilling_outbox_newest_sequence",
    ):
        assert line in exposition, "\n".join(
            m for m in exposition.splitlines() if "loanbilling" in m
        )


def test_json_logs_carry_the_request_id():
    from loanbilling.logs import request_id

    record = logging.LogRecord(
        "loanbilling.rpc", logging.INFO, __file__, 1, "paid %s", ("x",), None
    )
    token = request_id.set("req-7")
    try:
        record.request_id = request_id.get()
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "paid x"
    assert line["request_id"] == "req-7"
    assert line["level"] == "INFO" and line["logger"] == "loanbilling.rpc"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _channel(address: str, certificates, *, client_cert: bool) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certificates["ca.crt"].read_bytes(),
        private_key=certificates["client.key"].read_bytes() if client_cert else None,
        certificate_chain=certificates["client.crt"].read_bytes() if client_cert else None,
    )
    return grpc.secure_channel(address, credentials)


@pytest.mark.parametrize("mutual", [False, True])
def test_tls_and_mutual_tls(mutual, certificates, engine, clock):
    settings = dict(
        tls_cert_file=str(certificates["server.crt"]),
        tls_key_file=str(certificates["server.key"]),
    )
    if mutual:
        settings["tls_client_ca_file"] = str(certificates["ca.crt"])
    running = ServerThread(engine, clock, **settings).start()
    try:
        with _channel(running.address, certificates, client_cert=True) as channel:
            assert create_customer(loan_service_pb2_grpc.LoanServiceStub(channel)) > 0
        with _channel(running.address, certificates, client_cert=False) as channel:
            code = code_of(
                loan_service_pb2_grpc.LoanServiceStub(channel).GetCustomer,
                api.GetCustomerRequest(id=1),
                timeout=5,
            )
        assert code == (grpc.StatusCode.UNAVAILABLE if mutual else grpc.StatusCode.OK)
        with grpc.insecure_channel(running.address) as channel:  # plaintext to a TLS port
            code = code_of(
                loan_service_pb2_grpc.LoanServiceStub(channel).GetCustomer,
                api.GetCustomerRequest(id=1),
                timeout=5,
            )
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_plaintext_beyond_loopback_only_when_asked(engine, clock):
    refused = Settings(listen=f"0.0.0.0:{_free_port()}", sweep_interval_s=0)

    async def attempt(settings):
        app = await start(settings, engine=engine, clock=clock)
        await app.stop(0)

    with pytest.raises(OSError, match="refusing to serve plaintext on 0.0.0.0"):
        asyncio.run(attempt(refused))
    allowed = Settings(listen=f"0.0.0.0:{_free_port()}", sweep_interval_s=0, plaintext=True)
    asyncio.run(attempt(allowed))


def test_a_token_reload_names_what_changed_and_never_a_token():
    """What the server logs when SIGHUP swaps the table (tests/e2e/test_reload.py)."""
    old = TokenTable.parse(json.dumps(TOKENS), "old")
    new = TokenTable.parse(
        json.dumps(
            {
                "tokens": [
                    {"name": "ops", "role": "admin", "token": "rotated-admin-token"},
                    {"name": "collections", "role": "admin", "token": "collector-secret-token"},
                    {"name": "intake", "role": "collector", "token": "intake-secret-token"},
                ]
            }
        ),
        "new",
    )
    said = new.changes_from(old)
    assert said == (
        "added intake; removed dashboard; changed collections (role collector -> admin), "
        "ops (new token); 0 unchanged"
    )
    assert new.changes_from(new) == "no change (3 names)"
    assert old.changes_from(None).startswith("added collections, dashboard, ops;")
    for secret in ("rotated-admin-token", "intake-secret-token", "admin-secret-token"):
        assert secret not in said
        assert hashlib.sha256(secret.encode()).hexdigest()[:8] not in said
