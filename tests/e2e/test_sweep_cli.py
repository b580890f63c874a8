"""`loanbilling sweep` as cron runs it: a process that sweeps once, prints one JSON
line and exits, on SQLite and on PostgreSQL; what it wrote is then streamed by
a real server."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import selectors
import subprocess
import time

import grpc
import pytest
from google.type import date_pb2
from microfin.loanbilling.v1 import (
    events_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    resources_pb2,
)

from loanbilling.clock import FixedClock
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine
from loanbilling.storage.numbering import number_all
from loanbilling.storage.unit_of_work import sql_storage
from tests.e2e.processes import (
    CLI_TIMEOUT_S,
    LOANBILLING,
    ServerProcess,
    clean_env,
    migrate,
    run_cli,
)
from tests.support.api import lend_canonical

pytestmark = pytest.mark.timeout(120)

START = dt.date(2026, 1, 5)  # the canonical loan: week k due on START + 7k
ALL_KINDS = [k for k in events_pb2.EventKind.values() if k != events_pb2.EVENT_KIND_UNSPECIFIED]
K = events_pb2


def _date(day: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


@pytest.fixture
def two_weeks_paid(database_url):
    """The canonical loan with weeks 1 and 2 paid on their due dates, written as a
    server would have on 2026-01-19 (stored ACTIVE; creation and payment events
    numbered)."""
    engine = make_engine(database_url)
    try:
        billing = BillingService(sql_storage(engine), FixedClock(dt.date(2026, 1, 19)))
        customer = billing.create_customer(
            name="Siti Rahayu", email="siti@example.com", phone="+62 812-3456-7890"
        )
        loan = lend_canonical(billing, customer.id, START)
        for week in (1, 2):
            billing.make_payment(
                loan_id=loan.id,
                amount=110_000,
                payment_date=START + dt.timedelta(days=7 * week),
                idempotency_key=f"pay-{loan.id}-w{week}",
            )
        assert number_all(engine).count == 3  # created, received, received
    finally:
        engine.dispose()
    return database_url


def _sweep(database_url: str, *args: str):
    return run_cli("sweep", "--database-url", database_url, *args)


def test_sweep_marks_the_missed_weeks_and_the_delinquency_once(two_weeks_paid, tmp_path):
    first = _sweep(two_weeks_paid, "--as-of", "2026-02-03")
    assert first.returncode == 0, first.stderr
    # Weeks 3 and 4 (due 2026-01-26 and 2026-02-02) missed, the loan delinquent;
    # week 5 is due 2026-02-09, outside the 1-day reminder window: no reminder.
    assert json.loads(first.stdout) == {
        "as_of": "2026-02-03",
        "loans_checked": 1,
        "newly_delinquent": 1,
        "events_written": 3,
        "batches": 1,
    }
    assert len(first.stdout.splitlines()) == 1, first.stdout  # one JSON line, logs on stderr

    again = _sweep(two_weeks_paid, "--as-of", "2026-02-03")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "as_of": "2026-02-03",
        "loans_checked": 1,
        "newly_delinquent": 0,
        "events_written": 0,
        "batches": 1,
    }

    # What the two runs stored, as a server streams it: each event once, numbered
    # without a gap after the three the loan already had.
    env = clean_env(LOANBILLING_SWEEP_INTERVAL_S="0", LOANBILLING_STREAM_HEARTBEAT_S="0.2")
    with ServerProcess(two_weeks_paid, tmp_path, env=env) as server:
        events = _stream_until_idle(server.address, ALL_KINDS)
        default_kinds = _stream_until_idle(server.address, [])
        with grpc.insecure_channel(server.address) as channel:
            stored = loan_service_pb2_grpc.LoanServiceStub(channel).ListLoans(
                loan_service_pb2.ListLoansRequest(status=resources_pb2.LOAN_STATUS_DELINQUENT),
                timeout=10,
            )
        assert server.stop() == 0, server.log()

    assert [(e.sequence, e.kind, e.week_number) for e in events] == [
        (1, K.EVENT_KIND_LOAN_CREATED, 0),
        (2, K.EVENT_KIND_PAYMENT_RECEIVED, 1),
        (3, K.EVENT_KIND_PAYMENT_RECEIVED, 2),
        (4, K.EVENT_KIND_INSTALLMENT_MISSED, 3),
        (5, K.EVENT_KIND_INSTALLMENT_MISSED, 4),
        (6, K.EVENT_KIND_LOAN_DELINQUENT, 3),
    ]
    assert default_kinds == events[3:]
    swept = events[3:]
    assert {e.business_date.SerializeToString() for e in swept} == {
        _date(dt.date(2026, 2, 3)).SerializeToString()
    }
    assert [(e.due_date.month, e.due_date.day, e.amount) for e in swept] == [
        (1, 26, 110_000),
        (2, 2, 110_000),
        (1, 26, 220_000),  # delinquent: the oldest overdue week, the overdue amount
    ]
    for event in swept:
        assert (event.missed_installments, event.overdue_amount, event.days_past_due) == (
            2,
            220_000,
            8,
        )
        assert event.outstanding_amount == 5_280_000
    assert [loan.id for loan in stored.loans] == [1]  # the sweep flipped the stored status


def _stream_until_idle(address: str, kinds: list[int]) -> list[events_pb2.Event]:
    """Every stored event of these kinds, up to the first heartbeat."""
    with grpc.insecure_channel(address) as channel:
        stub = notification_service_pb2_grpc.NotificationServiceStub(channel)
        call = stub.StreamNotifications(
            notification_service_pb2.StreamNotificationsRequest(after_sequence=0, kinds=kinds),
            timeout=10,
        )
        events = []
        for message in call:
            if message.HasField("heartbeat"):
                call.cancel()
                return events
            events.append(message.event)
    raise AssertionError("the stream ended before its first heartbeat")


def test_sweep_refuses_a_date_after_the_business_date(two_weeks_paid):
    # Two days ahead: still after the business date if the date turns meanwhile.
    ahead = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    done = _sweep(two_weeks_paid, "--as-of", ahead.isoformat())
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert f"as_of: {ahead} is after the business date" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing was swept: the first real run at 2026-02-03 still writes everything.
    assert json.loads(_sweep(two_weeks_paid, "--as-of", "2026-02-03").stdout)["events_written"] == 3


@pytest.mark.parametrize("bad", ["2026-02-30", "03/02/2026", ""])
def test_sweep_refuses_a_malformed_date(tmp_path, bad):
    done = run_cli("sweep", "--database-url", f"sqlite:///{tmp_path}/x.db", "--as-of", bad)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"argument --as-of: {bad!r} is not a date like 2026-02-03" in done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == [], "a refused run must not create a database"


def test_sweep_refuses_an_unmigrated_database(tmp_path):
    done = run_cli("sweep", "--database-url", f"sqlite:///{tmp_path}/x.db", "--as-of", "2026-02-03")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "there is no database at" in done.stderr
    assert "run `loanbilling migrate`" in done.stderr
    assert list(tmp_path.iterdir()) == [], "a refused run must not create a database"
    assert "Traceback" not in done.stderr


def test_sweep_without_a_database_says_so():
    unreachable = run_cli("sweep", "--database-url", "postgresql://postgres@127.0.0.1:1/none")
    assert unreachable.returncode == 4
    assert "cannot reach the database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


@pytest.fixture
def small_book(tmp_path) -> str:
    """Five canonical loans, none paid, on a SQLite file: swept at 2026-02-03, each
    has missed weeks 1 to 4 and turns delinquent."""
    url = f"sqlite:///{tmp_path}/book.db"
    migrate(url, cwd=tmp_path)
    engine = make_engine(url)
    try:
        billing = BillingService(sql_storage(engine), FixedClock(dt.date(2026, 1, 5)))
        customer = billing.create_customer(name="Siti Rahayu", email="siti@example.com", phone="")
        for _ in range(5):
            lend_canonical(billing, customer.id, START)
        number_all(engine)
    finally:
        engine.dispose()
    return url


def _sweep_on_a_terminal(database_url: str, *args: str) -> tuple[int, str, str]:
    """Runs `loanbilling sweep` with its stderr on a pseudo-terminal (stdout a
    pipe): the exit status, what stdout got, and what the terminal showed."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(LOANBILLING), "sweep", "--database-url", database_url, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=clean_env(),
        )
    finally:
        os.close(terminal)  # the child holds it now
    shown = bytearray()
    deadline = time.monotonic() + CLI_TIMEOUT_S
    # A selector, not select.select: inside the whole suite the pty's descriptor
    # can be numbered above FD_SETSIZE (1024), which select() cannot watch.
    watch = selectors.DefaultSelector()
    watch.register(controller, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            ready = watch.select(0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        out = proc.communicate(timeout=CLI_TIMEOUT_S)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        watch.close()
        os.close(controller)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


SUMMARY = {
    "as_of": "2026-02-03",
    "loans_checked": 5,
    "newly_delinquent": 5,
    "events_written": 25,  # each loan: weeks 1 to 4 missed, and delinquent
    "batches": 3,
}


def test_sweep_shows_progress_on_a_terminal(small_book):
    status, out, shown = _sweep_on_a_terminal(
        small_book, "--as-of", "2026-02-03", "--sweep-batch-size", "2"
    )
    assert status == 0, shown
    assert json.loads(out) == SUMMARY  # stdout as without a terminal: one JSON line
    # One line rewritten in place ("\r", erase to its end), ended when the sweep is.
    assert "\r\x1b[Ksweep at 2026-02-03: 1 batch, 2 loans checked, " in shown, shown
    finished = re.search(
        r"\r\x1b\[Ksweep at 2026-02-03: 3 batches, 5 loans checked, [\d,]+ loans/s, "
        r"5 newly delinquent, 25 events \(\d+\.\d s, done\)\r?\n",
        shown,
    )
    assert finished, shown
    # Then the summary the sweep logs, on a line of its own.
    assert re.search(
        r"\n[^\r\n]*sweep at 2026-02-03: 5 loans checked, 5 newly delinquent, 25 events "
        r"written, 3 batches in \d+\.\d s \([\d,]+ loans/s\)",
        shown,
    ), shown


def test_sweep_without_a_terminal_prints_one_summary_line(small_book):
    done = _sweep(small_book, "--as-of", "2026-02-03", "--sweep-batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == SUMMARY
    assert len(done.stdout.splitlines()) == 1
    # No progress noise: no carriage returns or terminal codes, only the summary.
    assert "\r" not in done.stderr and "\x1b" not in done.stderr, repr(done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "sweep at 2026-02-03: 5 loans checked, 5 newly delinquent, 25 events written, " in (
        lines[0]
    )
    assert "3 batches in " in lines[0]
