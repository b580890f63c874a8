"""The TypeScript client of clients/typescript, generated from proto/ by
`make ts-client`, against a real `loanbilling serve`: its demo creates a
customer and the canonical loan, pays week 1, reads the outstanding and follows
the notification stream, and what it prints is what the server holds, read
back through the Python stubs.

Needs node and npm; skips without them, except under CI (CI=true), where it
fails. The first run installs clients/typescript/node_modules (`npm ci`); later
runs keep it, and the test takes a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.type import date_pb2
from microfin.loanbilling.v1 import (
    events_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)

from tests.e2e.processes import ServerProcess, clean_env, free_port, migrate

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
DEMO = CLIENT / "dist" / "demo.js"
# `npm ci` on a cold npm cache, then buf generate and tsc (~4 s once installed).
BUILD_TIMEOUT_S = 240
DEMO_TIMEOUT_S = 30  # the demo's own bound (DEMO_TIMEOUT_S)
RPC_TIMEOUT_S = 10


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"`{tool}` is not on PATH: the TypeScript client needs node 20+ and npm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def node() -> str:
    node = _require("node")
    _require("npm")
    return node


@pytest.fixture(scope="module")
def built(node) -> Path:
    """`make ts-client`: npm ci (only when node_modules is missing or stale), then
    TypeScript generated from proto/ and compiled into dist/."""
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not on PATH")
    started = time.monotonic()
    done = subprocess.run(
        [make, "--no-print-directory", "ts-client"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=clean_env(),
    )
    assert done.returncode == 0, f"make ts-client failed:\n{done.stdout}\n{done.stderr}"
    print(f"\nmake ts-client: {time.monotonic() - started:.1f}s")
    generated = CLIENT / "src" / "gen" / "microfin" / "loanbilling" / "v1"
    assert sorted(p.name for p in generated.glob("*.ts")) == [
        "analytics_service.ts",
        "events.ts",
        "ledger_service.ts",
        "loan_service.ts",
        "notification_service.ts",
        "resources.ts",
    ]
    assert DEMO.exists()
    return DEMO


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path}/loanbilling.db"
    migrate(url, cwd=tmp_path)
    # No periodic sweep: the loan's only events are the ones the demo causes.
    with ServerProcess(url, tmp_path, env=clean_env(LOANBILLING_SWEEP_INTERVAL_S="0")) as served:
        yield served


def _run_demo(node: str, demo: Path, address: str, timeout_s: int = DEMO_TIMEOUT_S):
    return subprocess.run(
        [node, str(demo), address],
        capture_output=True,
        text=True,
        # The demo's own bound, plus node's start-up: it must end by itself.
        timeout=timeout_s + 15,
        env=clean_env(DEMO_TIMEOUT_S=str(timeout_s)),
        cwd=CLIENT,
    )


def _as_json(message) -> dict:
    """proto3 JSON, as ts-proto's toJSON writes it: lowerCamelCase names,
    int64 as strings, enums by name, default values left out."""
    return json_format.MessageToDict(message)


def _without_create_time(event: dict) -> dict:
    # Timestamp precision differs: a JS Date keeps milliseconds only.
    return {k: v for k, v in event.items() if k != "createTime"}


def _stored_events(channel, loan_id: int, count: int) -> list[events_pb2.Event]:
    stub = notification_service_pb2_grpc.NotificationServiceStub(channel)
    call = stub.StreamNotifications(
        notification_service_pb2.StreamNotificationsRequest(
            after_sequence=0,
            loan_id=loan_id,
            kinds=[events_pb2.EVENT_KIND_LOAN_CREATED, events_pb2.EVENT_KIND_PAYMENT_RECEIVED],
        ),
        timeout=RPC_TIMEOUT_S,
    )
    events = []
    try:
        for message in call:
            if message.HasField("event"):
                events.append(message.event)
                if len(events) == count:
                    break
    finally:
        call.cancel()
    return events


def test_demo_against_a_real_server_matches_what_the_server_holds(node, built, server):
    started = time.monotonic()
    done = _run_demo(node, built, server.address)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, (
        f"demo exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
        f"--- server log:\n{server.log()}"
    )
    print(f"demo: {elapsed:.2f}s")
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert summary["address"] == server.address

    # The server's business date is today (UTC by default); week 1 was due on it.
    today = dt.datetime.now(dt.UTC).date()
    assert summary["businessDate"] in {today.isoformat(), (today - dt.timedelta(1)).isoformat()}
    business_date = dt.date.fromisoformat(summary["businessDate"])
    as_of = date_pb2.Date(year=business_date.year, month=business_date.month, day=business_date.day)
    start = business_date - dt.timedelta(days=7)

    loan_id = int(summary["loan"]["id"])
    customer_id = int(summary["customer"]["id"])
    payment_id = int(summary["payment"]["id"])

    with grpc.insecure_channel(server.address) as channel:
        loans = loan_service_pb2_grpc.LoanServiceStub(channel)

        customer = loans.GetCustomer(
            loan_service_pb2.GetCustomerRequest(id=customer_id), timeout=RPC_TIMEOUT_S
        ).customer
        assert summary["customer"] == _as_json(customer)

        loan = loans.GetLoan(
            loan_service_pb2.GetLoanRequest(loan_id=loan_id, as_of=as_of), timeout=RPC_TIMEOUT_S
        ).loan
        assert loan.customer_id == customer_id
        assert (loan.principal_amount, loan.interest_rate_bps, loan.weeks) == (5_000_000, 1000, 50)
        assert (loan.total_amount, loan.weekly_payment) == (5_500_000, 110_000)
        assert loan.currency_code == "IDR"
        assert (loan.start_date.year, loan.start_date.month, loan.start_date.day) == (
            start.year,
            start.month,
            start.day,
        )
        # The demo's loan is the one CreateLoan answered: nothing paid yet.
        assert summary["loan"]["totalAmount"] == "5500000"
        assert summary["loan"]["outstandingAmount"] == "5500000"
        assert loan.outstanding_amount == 5_390_000

        payments = loans.ListPayments(
            loan_service_pb2.ListPaymentsRequest(loan_id=loan_id), timeout=RPC_TIMEOUT_S
        ).payments
        # One payment, though the demo sent it twice (its retry was a replay).
        assert [p.id for p in payments] == [payment_id]
        assert summary["payment"] == _as_json(payments[0])
        assert payments[0].amount == 110_000
        assert list(payments[0].settled_week_numbers) == [1]
        assert payments[0].payment_date == as_of
        assert summary["paymentReplayedOnRetry"] is True

        outstanding = loans.GetOutstanding(
            loan_service_pb2.GetOutstandingRequest(loan_id=loan_id, as_of=as_of),
            timeout=RPC_TIMEOUT_S,
        )
        assert outstanding.outstanding_amount == 5_390_000
        assert summary["outstanding"] == _as_json(outstanding)

        stored = _stored_events(channel, loan_id, count=len(summary["events"]))

    assert [e.kind for e in stored] == [
        events_pb2.EVENT_KIND_LOAN_CREATED,
        events_pb2.EVENT_KIND_PAYMENT_RECEIVED,
    ]
    assert stored[1].payment_id == payment_id
    assert stored[1].outstanding_amount == 5_390_000
    assert [_without_create_time(e) for e in summary["events"]] == [
        _without_create_time(_as_json(e)) for e in stored
    ]


def test_demo_fails_without_hanging_when_no_server_answers(node, built):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    done = _run_demo(node, built, address, timeout_s=3)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert f"no server ready at {address}" in done.stderr
    assert elapsed < 10
