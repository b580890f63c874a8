"""`loanbilling serve` as an operator sees it: signals, refusals to start,
reflection and health, with the process and grpcurl both real."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from loanbilling.config import HELP
from tests.e2e.processes import (
    ServerProcess,
    clean_env,
    free_port,
    grpcurl,
    migrate,
    run_cli,
)

pytestmark = pytest.mark.timeout(120)

LOAN_SERVICE_PROTO = (
    Path(__file__).resolve().parents[2] / "proto/microfin/loanbilling/v1/loan_service.proto"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server on a migrated SQLite file, shared by the read-only checks."""
    workdir = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{workdir}/loanbilling.db"
    migrate(url, cwd=workdir)
    with ServerProcess(url, workdir) as server:
        yield server


def test_grpcurl_list_shows_every_service(served):
    done = grpcurl("-plaintext", served.address, "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "microfin.loanbilling.v1.AnalyticsService",
        "microfin.loanbilling.v1.LedgerService",
        "microfin.loanbilling.v1.LoanService",
        "microfin.loanbilling.v1.NotificationService",
    ]


def _comment_above(proto: Path, declaration: str) -> list[str]:
    """The `//` lines right above the line of `proto` that starts with `declaration`."""
    lines = [line.strip() for line in proto.read_text().splitlines()]
    at = next(i for i, line in enumerate(lines) if line.startswith(declaration))
    comment = []
    while lines[at - 1 - len(comment)].startswith("//"):
        comment.insert(0, lines[at - 1 - len(comment)])
    return comment


def test_reflection_serves_the_protos_comments(served):
    """`grpcurl describe` shows the documentation of proto/ (descriptors with source
    info, generated/microfin/descriptor_set.binpb), and calls still resolve."""
    comment = _comment_above(LOAN_SERVICE_PROTO, "rpc MakePayment(")
    assert len(comment) > 1, comment
    done = grpcurl(
        "-plaintext", served.address, "describe", "microfin.loanbilling.v1.LoanService.MakePayment"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "microfin.loanbilling.v1.LoanService.MakePayment is a method:\n"
    ), done.stdout
    assert [line.strip() for line in done.stdout.splitlines()[1:-1]] == comment, done.stdout
    assert "rpc MakePayment ( .microfin.loanbilling.v1.MakePaymentRequest )" in done.stdout

    service = grpcurl(
        "-plaintext", served.address, "describe", "microfin.loanbilling.v1.LoanService"
    )
    assert service.returncode == 0, service.stderr
    assert "\n  // Pays exactly the amount of one or more" in service.stdout, service.stdout
    # Files from outside proto/ (health, google.type) still resolve, without comments.
    for symbol in ("grpc.health.v1.Health", "google.type.Date"):
        other = grpcurl("-plaintext", served.address, "describe", symbol)
        assert other.returncode == 0, other.stderr
    unknown = grpcurl(
        "-plaintext", served.address, "describe", "microfin.loanbilling.v1.LoanService.Nope"
    )
    assert unknown.returncode != 0
    assert "Symbol not found" in unknown.stderr

    # A call through reflection: grpcurl encodes the request from the served
    # descriptors and decodes the error details (google.rpc) the same way.
    call = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"loan_id": 999999}),
        served.address,
        "microfin.loanbilling.v1.LoanService/GetLoan",
    )
    assert call.returncode != 0
    assert "Code: NotFound" in call.stderr, call.stderr
    assert "google.rpc.ErrorInfo" in call.stderr, call.stderr


@pytest.mark.parametrize(
    "service",
    [
        "",
        "microfin.loanbilling.v1.LoanService",
        "microfin.loanbilling.v1.NotificationService",
        "microfin.loanbilling.v1.AnalyticsService",
        "microfin.loanbilling.v1.LedgerService",
    ],
)
def test_health_check_answers_serving(served, service):
    done = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"service": service}),
        served.address,
        "grpc.health.v1.Health/Check",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "SERVING"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_and_exits_0(tmp_path, sig):
    url = f"sqlite:///{tmp_path}/loanbilling.db"
    migrate(url, cwd=tmp_path)
    with ServerProcess(url, tmp_path) as server:
        sent = time.monotonic()
        server.signal(sig)
        status = server.wait(timeout=10)
        took = time.monotonic() - sent
        log = server.log()
    assert status == 0, log
    assert took < 5, f"took {took:.1f}s to stop:\n{log}"
    assert "shutting down" in log
    assert "loanbilling.server: stopped" in log


def test_serve_refuses_an_unmigrated_database(empty_database_url, tmp_path):
    done = run_cli(
        "serve",
        "--database-url",
        empty_database_url,
        "--listen",
        f"127.0.0.1:{free_port()}",
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    # SQLite: no file yet (and none created); PostgreSQL: an empty database.
    assert "no loanbilling schema" in done.stderr or "there is no database" in done.stderr
    assert "`loanbilling migrate`" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_an_unknown_time_zone(tmp_path):
    done = run_cli("serve", "--time-zone", "Mars/Olympus", "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "time zone 'Mars/Olympus' is not an IANA zone" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "a refused start must not create a database"


def test_environment_settings_apply_and_flags_win(tmp_path):
    env = clean_env(LOANBILLING_TIME_ZONE="Mars/Olympus")
    refused = run_cli("serve", "--listen", "127.0.0.1:0", env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Mars/Olympus" in refused.stderr

    url = f"sqlite:///{tmp_path}/loanbilling.db"
    migrate(url, cwd=tmp_path)
    env = clean_env(LOANBILLING_TIME_ZONE="Mars/Olympus")
    with ServerProcess(url, tmp_path, "--time-zone", "Asia/Jakarta", env=env) as server:
        done = grpcurl("-plaintext", server.address, "list")
        assert done.returncode == 0, done.stderr
        assert server.stop() == 0, server.log()


def test_a_taken_port_is_refused_naming_the_flag(served, tmp_path):
    url = f"sqlite:///{tmp_path}/loanbilling.db"
    migrate(url, cwd=tmp_path)
    done = run_cli("serve", "--database-url", url, "--listen", served.address, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on {served.address}" in done.stderr
    assert "--listen or LOANBILLING_LISTEN" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_and_help_say_what_each_flag_does():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loanbilling ")
    assert "(contract microfin.loanbilling.v1)" in done.stdout
    helped = run_cli("serve", "--help")
    assert helped.returncode == 0, helped.stderr
    text = " ".join(helped.stdout.split())  # argparse wraps the lines
    for name, says in HELP.items():
        assert f"--{name.replace('_', '-')}" in text, name
        assert " ".join(says.split()) in text, name
    for command in ("migrate", "sweep", "verify-books", "export-journal"):
        assert run_cli(command, "--help").returncode == 0, command
