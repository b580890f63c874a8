"""`loanbilling serve` reloading on SIGHUP, as an operator does it: the token file
and the TLS files are replaced on disk, the process gets SIGHUP, and calls go on.
Also the connection age limit that moves clients onto new replicas."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import (
    events_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from microfin.loanbilling.v1 import loan_service_pb2 as api

from tests.e2e.processes import ServerProcess, clean_env, migrate
from tests.support.api import new_key
from tests.support.certs import self_signed

pytestmark = pytest.mark.timeout(120)

ENV = clean_env(LOANBILLING_SWEEP_INTERVAL_S="0", LOANBILLING_STREAM_HEARTBEAT_S="0.2")
SECRETS = ("ops-secret-token", "dashboard-secret-token", "intake-secret-token")


def _tokens(*entries: tuple[str, str, str]) -> str:
    return json.dumps(
        {"tokens": [{"name": n, "role": r, "token": t} for n, r, t in entries]}, indent=2
    )


def _replace(path: Path, content: str | bytes) -> None:
    """As a deployment tool writes a file: a new file moved over the old one."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(new, path)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _code(call, request, token: str) -> grpc.StatusCode:
    try:
        call(request, metadata=_bearer(token), timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _until_heartbeat(stream) -> list:
    events = []
    for message in stream:
        if message.HasField("heartbeat"):
            return events
        events.append(message)
    raise AssertionError("the stream ended before its first heartbeat")


def _hup(server: ServerProcess, expect: str) -> str:
    """SIGHUP, then the log once the server reported `expect` for it."""
    mark = len(server.log())
    server.signal(signal.SIGHUP)
    return server.wait_for_log(expect, after=mark)[mark:]


@pytest.fixture
def database(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/loanbilling.db"
    migrate(url, cwd=tmp_path)
    return url


def test_sighup_swaps_the_tokens_and_calls_in_flight_go_on(database, tmp_path):
    token_file = tmp_path / "tokens.json"
    token_file.write_text(
        _tokens(("ops", "admin", SECRETS[0]), ("dashboard", "reader", SECRETS[1]))
    )
    args = ("--auth-tokens-file", str(token_file))
    with ServerProcess(database, tmp_path, *args, env=ENV) as server:
        channel = grpc.insecure_channel(server.address)
        stub = loan_service_pb2_grpc.LoanServiceStub(channel)
        ops = _bearer(SECRETS[0])
        customer = stub.CreateCustomer(
            api.CreateCustomerRequest(name="Siti", email="siti@example.com"), metadata=ops
        ).customer.id

        def loan() -> api.CreateLoanRequest:
            return api.CreateLoanRequest(
                customer_id=customer,
                principal_amount=5_000_000,
                interest_rate_bps=1000,
                weeks=50,
                request_id=new_key("loan"),
            )

        loan_id = stub.CreateLoan(loan(), metadata=ops).loan.id
        read = api.GetOutstandingRequest(loan_id=loan_id)
        assert _code(stub.GetOutstanding, read, SECRETS[1]) == grpc.StatusCode.OK
        assert _code(stub.GetOutstanding, read, SECRETS[2]) == grpc.StatusCode.UNAUTHENTICATED

        # In flight across the reload: a stream opened before it, and reads one
        # after another (on their own channel) until after it.
        streams = notification_service_pb2_grpc.NotificationServiceStub(channel)
        stream = streams.StreamNotifications(
            notification_service_pb2.StreamNotificationsRequest(
                kinds=[events_pb2.EVENT_KIND_LOAN_CREATED]
            ),
            metadata=ops,
            timeout=30,
        )
        assert [m.event.loan_id for m in _until_heartbeat(stream)] == [loan_id]  # caught up
        reads: list[grpc.StatusCode] = []
        done = threading.Event()

        def keep_reading() -> None:
            with grpc.insecure_channel(server.address) as own:
                reader = loan_service_pb2_grpc.LoanServiceStub(own)
                while not done.is_set():
                    reads.append(_code(reader.GetOutstanding, read, SECRETS[0]))

        reading = threading.Thread(target=keep_reading)
        reading.start()
        try:
            time.sleep(0.3)
            before = len(reads)
            _replace(
                token_file,
                _tokens(("ops", "admin", SECRETS[0]), ("intake", "admin", SECRETS[2])),
            )
            reloaded = _hup(server, "tokens reloaded")
            time.sleep(0.3)
        finally:
            done.set()
            reading.join(timeout=15)
        assert before > 0 and len(reads) > before, (before, len(reads))
        assert set(reads) == {grpc.StatusCode.OK}, reads

        assert "added intake; removed dashboard; 1 unchanged" in reloaded, reloaded
        # The added token works, the removed one no longer does, the kept one still.
        assert _code(stub.GetOutstanding, read, SECRETS[1]) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(stub.GetOutstanding, read, SECRETS[0]) == grpc.StatusCode.OK
        second = stub.CreateLoan(loan(), metadata=_bearer(SECRETS[2])).loan.id
        # The stream opened before the reload delivers what happened after it.
        for message in stream:
            if message.HasField("event"):
                assert message.event.loan_id == second
                break
        stream.cancel()
        channel.close()
        assert server.stop() == 0, server.log()
    log = server.log()
    assert not any(secret in log for secret in SECRETS), "a token reached the log"


@pytest.mark.parametrize(
    "broken",
    ['{"tokens": [{"name": "ops"', '{"tokens": []}', '{"tokens": [{"name": "x", "role": 3}]}'],
    ids=["truncated", "empty", "wrong-type"],
)
def test_a_broken_token_file_keeps_the_old_tokens(database, tmp_path, broken):
    token_file = tmp_path / "tokens.json"
    token_file.write_text(_tokens(("ops", "admin", SECRETS[0])))
    args = ("--auth-tokens-file", str(token_file))
    with ServerProcess(database, tmp_path, *args, env=ENV) as server:
        _replace(token_file, broken)
        reloaded = _hup(server, "tokens not reloaded")
        assert "the previous ones stay in force" in reloaded
        assert "Traceback" not in reloaded
        with grpc.insecure_channel(server.address) as channel:
            stub = loan_service_pb2_grpc.LoanServiceStub(channel)
            customer = api.CreateCustomerRequest(name="Siti", email="siti@example.com")
            assert _code(stub.CreateCustomer, customer, SECRETS[0]) == grpc.StatusCode.OK
            assert _code(stub.CreateCustomer, customer, "") == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            # Fixed, the next SIGHUP takes it.
            _replace(token_file, _tokens(("intake", "admin", SECRETS[2])))
            assert "added intake; removed ops" in _hup(server, "tokens reloaded")
            assert _code(stub.CreateCustomer, customer, SECRETS[2]) == grpc.StatusCode.OK
            assert _code(stub.CreateCustomer, customer, SECRETS[0]) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
        assert server.stop() == 0, server.log()


def _served_certificate(address: str) -> bytes:
    """The certificate a new TLS connection to the server gets (DER)."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        context.wrap_socket(sock) as tls,
    ):
        return tls.getpeercert(binary_form=True)


def _der(pem_file: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_file.read_text())


def _health(address: str, ca: Path) -> grpc.Channel:
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.read_bytes()))


def _check(channel: grpc.Channel) -> health_pb2.HealthCheckResponse:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)


class TlsPair:
    """Two self-signed certificates, and the server's TLS files, holding the first."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.first_crt, self.first_key = self_signed(tmp_path, "first")
        self.second_crt, self.second_key = self_signed(tmp_path, "second")
        self.cert, self.key = tmp_path / "tls.crt", tmp_path / "tls.key"
        _replace(self.cert, self.first_crt.read_bytes())
        _replace(self.key, self.first_key.read_bytes())

    def server(self, database: str) -> ServerProcess:
        args = ("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key))
        return ServerProcess(
            database,
            self.tmp_path,
            *args,
            env=ENV,
            grpcurl_transport=("-cacert", str(self.first_crt)),
        )


def test_sighup_serves_a_replaced_certificate_and_keeps_it_on_broken_files(database, tmp_path):
    tls = TlsPair(tmp_path)
    with tls.server(database) as server:
        assert _served_certificate(server.address) == _der(tls.first_crt)
        # A connection open across the switch keeps working (it trusts the first only).
        before = _health(server.address, tls.first_crt)
        assert _check(before).status == health_pb2.HealthCheckResponse.SERVING

        _replace(tls.key, tls.second_key.read_bytes())
        _replace(tls.cert, tls.second_crt.read_bytes())
        reloaded = _hup(server, "TLS files reloaded (SIGHUP)")
        assert "new connections get certificate" in reloaded, reloaded
        assert _served_certificate(server.address) == _der(tls.second_crt)
        with _health(server.address, tls.second_crt) as after:
            assert _check(after).status == health_pb2.HealthCheckResponse.SERVING
        assert _check(before).status == health_pb2.HealthCheckResponse.SERVING
        before.close()

        # Broken files: the second certificate stays, and so does the server.
        _replace(tls.cert, b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
        refused = _hup(server, "TLS files not reloaded (SIGHUP)")
        assert "still serving certificate" in refused, refused
        assert _served_certificate(server.address) == _der(tls.second_crt)
        _replace(tls.cert, tls.first_crt.read_bytes())  # with the second key: no pair
        refused = _hup(server, "TLS files not reloaded (SIGHUP)")
        assert "KEY_VALUES_MISMATCH" in refused, refused
        assert _served_certificate(server.address) == _der(tls.second_crt)
        with _health(server.address, tls.second_crt) as after:
            assert _check(after).status == health_pb2.HealthCheckResponse.SERVING
        assert "Traceback" not in server.log()
        assert server.stop() == 0, server.log()


def test_a_certificate_renewed_on_disk_is_served_to_the_next_connections(database, tmp_path):
    """Without a signal too: gRPC asks at each new connection, and the files are
    read again when they changed (as when a Kubernetes Secret is updated)."""
    tls = TlsPair(tmp_path)
    with tls.server(database) as server:
        _replace(tls.key, tls.second_key.read_bytes())
        _replace(tls.cert, tls.second_crt.read_bytes())
        assert _served_certificate(server.address) == _der(tls.second_crt)
        server.wait_for_log("TLS files reloaded (changed on disk)")
        assert server.stop() == 0, server.log()


def test_connections_are_recycled_after_max_connection_age(database, tmp_path):
    args = ("--max-connection-age-s", "1", "--max-connection-age-grace-s", "1")
    with ServerProcess(database, tmp_path, *args, env=ENV) as server:
        with grpc.insecure_channel(server.address) as channel:
            streams = notification_service_pb2_grpc.NotificationServiceStub(channel)
            stream = streams.StreamNotifications(
                notification_service_pb2.StreamNotificationsRequest(), timeout=20
            )
            opened = time.monotonic()
            with pytest.raises(grpc.RpcError) as ended:
                for _ in stream:
                    pass
            # Age (1 s +- 10 %) plus grace (1 s), then the connection closes: the
            # stream ends for the client to resume, well before its own deadline.
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value
            assert 1.5 < time.monotonic() - opened < 10
            # The channel reconnects by itself.
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
                health_pb2.HealthCheckResponse.SERVING
            )
        assert server.stop() == 0, server.log()
