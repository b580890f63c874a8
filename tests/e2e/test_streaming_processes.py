"""Notification streams across real `loanbilling serve` processes on one PostgreSQL
database: an event committed through one replica reaches the streams of another
within a second, in order and without gaps, and a stream resumes without gap or
duplicate after a cancel, a restart, a SIGTERM or a kill -9 of the writer."""

from __future__ import annotations

import datetime as dt
import queue
import signal
import threading
import time

import grpc
import pytest
from google.type import date_pb2
from microfin.loanbilling.v1 import (
    events_pb2,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)

from tests.e2e.processes import ServerProcess, clean_env
from tests.support.api import new_key

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ALL_KINDS = [k for k in events_pb2.EventKind.values() if k != events_pb2.EVENT_KIND_UNSPECIFIED]
CREATED = events_pb2.EVENT_KIND_LOAN_CREATED
RECEIVED = events_pb2.EVENT_KIND_PAYMENT_RECEIVED
HEARTBEAT_S = 0.2
DELIVERY_LIMIT_S = 1.0  # the spec: "delivered to streams on the others within a second"
RPC_TIMEOUT_S = 10
START = dt.date(2026, 1, 5)
# Installment k of a loan started on START is due on START + 7k; weeks 1..40 are
# all due in the past (2026-10-12 at the latest), so each is payable on its due date.
WEEKS_PAYABLE = 40
# Never delinquent (a threshold above the term), so that the only events are the
# ones a test writes: loan created and payment received.
NEVER_DELINQUENT = 51

# Measured delivery latencies across processes, printed at the end of the module (-s).
LATENCIES: list[float] = []


@pytest.fixture(scope="module", autouse=True)
def _report_latencies():
    yield
    if LATENCIES:
        ordered = sorted(LATENCIES)
        print(
            f"\ncross-process delivery: {len(ordered)} events, "
            f"median {ordered[len(ordered) // 2] * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )


def _date(day: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def _due(week: int) -> dt.date:
    return START + dt.timedelta(days=7 * week)


@pytest.fixture
def database(postgres_databases):
    url = postgres_databases.create()
    yield url
    postgres_databases.release(url)


def _server(url: str, workdir, *args: str) -> ServerProcess:
    env = clean_env(
        LOANBILLING_SWEEP_INTERVAL_S="0",
        LOANBILLING_STREAM_HEARTBEAT_S=str(HEARTBEAT_S),
        LOANBILLING_DB_POOL_SIZE="4",
    )
    return ServerProcess(url, workdir, *args, env=env)


@pytest.fixture
def replicas(database, tmp_path):
    """Two servers, A and B, on the same fresh PostgreSQL database."""
    a = _server(database, tmp_path)
    b = _server(database, tmp_path)
    while b.port == a.port:  # free_port() asks the kernel twice before either binds
        b = _server(database, tmp_path)
    try:
        a.start()
        b.start()  # both boot at once: half the wait
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        for server in (a, b):
            server.stop()


class Client:
    """LoanService of one server over a channel of its own."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = loan_service_pb2_grpc.LoanServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def customer(self, name: str = "Siti Rahayu") -> int:
        return self.stub.CreateCustomer(
            loan_service_pb2.CreateCustomerRequest(
                name=name, email="siti@example.com", phone="+62 812-3456-7890"
            ),
            timeout=RPC_TIMEOUT_S,
        ).customer.id

    def loan(self, customer_id: int) -> int:
        """A canonical loan (5,000,000 at 10 %, 50 weeks) started on START."""
        return self.stub.CreateLoan(
            loan_service_pb2.CreateLoanRequest(
                customer_id=customer_id,
                principal_amount=5_000_000,
                interest_rate_bps=1000,
                weeks=50,
                start_date=_date(START),
                delinquency_threshold=NEVER_DELINQUENT,
                request_id=new_key("loan"),
            ),
            timeout=RPC_TIMEOUT_S,
        ).loan.id

    def pay(self, loan_id: int, week: int, *, timeout: float = RPC_TIMEOUT_S):
        """Pays installment `week` on its due date (key pay-LOAN-wWEEK)."""
        return self.stub.MakePayment(
            loan_service_pb2.MakePaymentRequest(
                loan_id=loan_id,
                amount=110_000,
                payment_date=_date(_due(week)),
                idempotency_key=f"pay-{loan_id}-w{week}",
            ),
            timeout=timeout,
        )

    def payments(self, loan_id: int) -> list:
        return list(
            self.stub.ListPayments(
                loan_service_pb2.ListPaymentsRequest(loan_id=loan_id, page_size=100),
                timeout=RPC_TIMEOUT_S,
            ).payments
        )


class Stream:
    """A StreamNotifications call read on a thread: every message with its arrival time.

    The queue holds (monotonic time, message), then once (time, RpcError) or
    (time, None) when the stream ends.
    """

    def __init__(
        self,
        address: str,
        after_sequence: int = 0,
        kinds: list[int] | None = None,
        loan_id: int = 0,
    ) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        stub = notification_service_pb2_grpc.NotificationServiceStub(self.channel)
        self.call = stub.StreamNotifications(
            notification_service_pb2.StreamNotificationsRequest(
                after_sequence=after_sequence,
                kinds=ALL_KINDS if kinds is None else kinds,
                loan_id=loan_id,
            ),
            timeout=90,
        )
        self.messages: queue.Queue = queue.Queue()
        self.ended: tuple[float, grpc.RpcError | None] | None = None
        self._early: list[tuple[float, events_pb2.Event]] = []  # read by `opened`
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.put((time.monotonic(), message))
        except grpc.RpcError as error:
            self.messages.put((time.monotonic(), error))
        else:
            self.messages.put((time.monotonic(), None))

    def _next(self, timeout: float):
        try:
            arrived, item = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"stream on {self.address}: nothing for {timeout}s") from None
        if item is None or isinstance(item, grpc.RpcError):
            self.ended = (arrived, item)
            raise AssertionError(f"stream on {self.address} ended: {item!r}")
        return arrived, item

    def opened(self, timeout: float = 10) -> int:
        """Waits until the stream stands at the head: its first heartbeat, whose
        sequence it returns. Events before it are kept for `events`/`until_idle`."""
        deadline = time.monotonic() + timeout
        while True:
            arrived, message = self._next(max(deadline - time.monotonic(), 0.01))
            if message.HasField("heartbeat"):
                return message.heartbeat.sequence
            self._early.append((arrived, message.event))

    def events(self, count: int, timeout: float = 10) -> list[tuple[float, events_pb2.Event]]:
        """The next `count` events with their arrival times; heartbeats skipped."""
        got = self._early[:count]
        del self._early[:count]
        deadline = time.monotonic() + timeout
        while len(got) < count:
            arrived, message = self._next(max(deadline - time.monotonic(), 0.01))
            if message.HasField("event"):
                got.append((arrived, message.event))
        return got

    def until_idle(self, head: int, timeout: float = 10) -> tuple[list[events_pb2.Event], int]:
        """Events up to the first heartbeat at `head` or beyond, and its sequence.

        A heartbeat comes after a quiet spell and says every event up to its
        sequence was examined: an event delivered late or twice would come before it.
        """
        got = [event for _, event in self._early]
        self._early.clear()
        deadline = time.monotonic() + timeout
        while True:
            _, message = self._next(max(deadline - time.monotonic(), 0.01))
            if message.HasField("event"):
                got.append(message.event)
            elif message.heartbeat.sequence >= head:
                return got, message.heartbeat.sequence

    def end(self, timeout: float = 10) -> tuple[float, grpc.RpcError | None]:
        """Waits for the end of the stream (messages before it are dropped)."""
        deadline = time.monotonic() + timeout
        while self.ended is None:
            try:
                self._next(max(deadline - time.monotonic(), 0.01))
            except AssertionError:
                if self.ended is None:
                    raise
        return self.ended

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(10)
        self.channel.close()


@pytest.fixture
def streams():
    opened: list[Stream] = []

    def open_stream(*args, **kwargs) -> Stream:
        stream = Stream(*args, **kwargs)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def _sequences(events) -> list[int]:
    return [event.sequence for event in events]


def _assert_contiguous(events, after: int) -> None:
    sequences = _sequences(events)
    assert sequences == list(range(after + 1, after + 1 + len(sequences))), sequences


def test_events_reach_another_replica_within_a_second_and_resume(replicas, streams):
    a, b = replicas
    writer = Client(a.address)
    try:
        stream = streams(b.address)
        assert stream.opened() == 0

        # Each event is measured from the moment the call that writes it is sent
        # to A until B's stream delivers it: an upper bound on commit -> delivery.
        customer_id = writer.customer()
        sent = time.monotonic()
        loan_id = writer.loan(customer_id)
        [(created_at, created)] = stream.events(1)
        sent_payment = time.monotonic()
        payment = writer.pay(loan_id, 1).payment
        [(received_at, received)] = stream.events(1)
        latencies = [created_at - sent, received_at - sent_payment]
        LATENCIES.extend(latencies)
        assert max(latencies) < DELIVERY_LIMIT_S, f"delivery took {latencies}s"

        assert [(e.kind, e.loan_id, e.customer_id) for e in (created, received)] == [
            (CREATED, loan_id, customer_id),
            (RECEIVED, loan_id, customer_id),
        ]
        assert (received.payment_id, received.week_number, received.amount) == (
            payment.id,
            1,
            110_000,
        )
        assert received.outstanding_amount == 5_390_000
        assert _sequences([created, received]) == [1, 2]

        # More payments, one at a time, each measured.
        for week in range(2, 6):
            sent = time.monotonic()
            writer.pay(loan_id, week)
            [(arrived, event)] = stream.events(1)
            LATENCIES.append(arrived - sent)
            assert arrived - sent < DELIVERY_LIMIT_S
            assert (event.kind, event.week_number, event.sequence) == (RECEIVED, week, week + 1)
        assert stream.until_idle(6) == ([], 6)

        # Resume after a cancel: what was written meanwhile, then live events, once each.
        stream.close()
        for week in range(6, 9):
            writer.pay(loan_id, week)
        resumed = streams(b.address, after_sequence=6)
        missed = [event for _, event in resumed.events(3)]
        assert [(e.sequence, e.week_number) for e in missed] == [(7, 6), (8, 7), (9, 8)]
        sent = time.monotonic()
        writer.pay(loan_id, 9)
        [(arrived, live)] = resumed.events(1)
        LATENCIES.append(arrived - sent)
        assert (live.sequence, live.week_number) == (10, 9)
        assert resumed.until_idle(10) == ([], 10)
        resumed.close()

        # Restart B and resume from the last sequence seen: no gap, no duplicate.
        b.signal(signal.SIGTERM)
        assert b.wait() == 0, b.log()
        writer.pay(loan_id, 10)  # while B is down
        b.restart()
        after_restart = streams(b.address, after_sequence=10)
        [(_, event)] = after_restart.events(1)
        assert (event.sequence, event.week_number) == (11, 10)
        sent = time.monotonic()
        writer.pay(loan_id, 11)
        [(arrived, event)] = after_restart.events(1)
        LATENCIES.append(arrived - sent)
        assert arrived - sent < DELIVERY_LIMIT_S
        assert (event.sequence, event.week_number) == (12, 11)
        assert after_restart.until_idle(12) == ([], 12)

        # And the whole history, replayed from 0 on the restarted B, is gap-free.
        history, head = streams(b.address).until_idle(12)
        _assert_contiguous(history, 0)
        assert head == 12
        assert [(e.kind, e.week_number) for e in history] == [(CREATED, 0)] + [
            (RECEIVED, week) for week in range(1, 12)
        ]
    finally:
        writer.close()


def test_filtered_stream_on_another_replica(replicas, streams):
    """Filters skip sequences, so only the order is checked; default kinds carry
    no creations or payments (heartbeats still report the head)."""
    a, b = replicas
    writer = Client(a.address)
    try:
        first_loan = writer.loan(writer.customer("Siti Rahayu"))
        second_loan = writer.loan(writer.customer("Budi Santoso"))
        one_loan = streams(b.address, loan_id=second_loan)
        default_kinds = streams(b.address, kinds=[])
        one_loan.opened(), default_kinds.opened()
        for week in (1, 2):
            writer.pay(first_loan, week)
            writer.pay(second_loan, week)
        events, head = one_loan.until_idle(6)
        assert [(e.kind, e.loan_id, e.week_number) for e in events] == [
            (CREATED, second_loan, 0),
            (RECEIVED, second_loan, 1),
            (RECEIVED, second_loan, 2),
        ]
        assert _sequences(events) == sorted(_sequences(events))
        assert head == 6
        assert default_kinds.until_idle(6) == ([], 6)
    finally:
        writer.close()


def test_sigterm_ends_open_streams_promptly_with_unavailable(database, tmp_path, streams):
    # A long grace period: the streams must not wait for it.
    with _server(database, tmp_path, "--shutdown-grace-s", "10") as server:
        stream = streams(server.address)
        stream.opened()
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        ended_at, error = stream.end(timeout=5)
        stream_took = ended_at - sent
        status = server.wait(timeout=10)
        exit_took = time.monotonic() - sent
        log = server.log()
    assert isinstance(error, grpc.RpcError), error
    assert error.code() is grpc.StatusCode.UNAVAILABLE, error
    assert "resume from the last sequence" in error.details()
    assert stream_took < 1.0, f"the stream ended {stream_took:.2f}s after SIGTERM"
    assert status == 0, log
    assert exit_took < 5.0, f"exited {exit_took:.2f}s after SIGTERM (grace 10s):\n{log}"


@pytest.mark.parametrize("payers", [4, pytest.param(32, marks=pytest.mark.slow)])
def test_kill_9_of_the_writer_mid_burst_loses_no_event(payers, replicas, streams):
    a, b = replicas
    setup = Client(a.address)
    try:
        loans = [setup.loan(setup.customer(f"Borrower {i}")) for i in range(payers)]
    finally:
        setup.close()
    # A cursor must be one the service gave out (a later one is OUT_OF_RANGE): wait
    # until the creations are numbered and delivered, then follow from there.
    creations = streams(b.address, after_sequence=0)
    creations.opened()
    created = [event for _, event in creations.events(len(loans), timeout=10)]
    creations.close()
    assert created[-1].sequence == len(loans)
    watching = streams(b.address, after_sequence=len(loans))
    assert watching.opened() == len(loans)

    # One payer per loan, paying week after week through A until A dies.
    ok: dict[int, list[int]] = {loan: [] for loan in loans}
    failed: dict[int, int] = {}
    started = threading.Event()

    def pay_until_failure(loan_id: int) -> None:
        client = Client(a.address)
        try:
            for week in range(1, WEEKS_PAYABLE + 1):
                try:
                    client.pay(loan_id, week, timeout=5)
                except grpc.RpcError:
                    failed[loan_id] = week  # outcome unknown: retried below
                    return
                ok[loan_id].append(week)
                if sum(map(len, ok.values())) >= len(loans) * 3:
                    started.set()  # a burst is under way: time to kill A
        finally:
            client.close()

    payers = [threading.Thread(target=pay_until_failure, args=(loan,)) for loan in loans]
    for payer in payers:
        payer.start()
    assert started.wait(30), "the burst did not get going"
    time.sleep(0.2)
    assert a.kill() == -signal.SIGKILL
    for payer in payers:
        payer.join(30)
    assert not any(payer.is_alive() for payer in payers)
    answered_ok = sum(map(len, ok.values()))
    assert answered_ok >= len(loans) * 3

    # The stream on B goes on (B numbers what A committed and could not number);
    # stop it somewhere after every acknowledged payment and resume on the
    # restarted A from there.
    seen = [event for _, event in watching.events(answered_ok, timeout=10)]
    watching.close()
    a.restart()
    writer = Client(a.address)
    try:
        resumed = streams(a.address, after_sequence=seen[-1].sequence)
        resumed.opened()
        # A payment whose outcome the kill hid is retried with its key: recorded
        # once either way. Then every loan pays one more week.
        for loan_id in loans:
            if loan_id in failed:
                retried = writer.pay(loan_id, failed[loan_id])
                ok[loan_id].append(failed[loan_id])
                assert retried.payment.settled_week_numbers == [failed[loan_id]]
            if len(ok[loan_id]) < WEEKS_PAYABLE:
                writer.pay(loan_id, len(ok[loan_id]) + 1)
        by_loan = {loan: writer.payments(loan) for loan in loans}
        total = len(loans) + sum(map(len, by_loan.values()))
        rest = [event for _, event in resumed.events(total - seen[-1].sequence)]
        assert resumed.until_idle(total) == ([], total)
        # The books: every recorded payment has its entry and no entry is without its
        # movement (each loan: its creation, then one entry per payment), and they
        # reconcile with every loan.
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(writer.channel)
        for loan_id, payments in by_loan.items():
            entries = ledger.ListJournalEntries(
                ledger_service_pb2.ListJournalEntriesRequest(loan_id=loan_id, page_size=1000),
                timeout=RPC_TIMEOUT_S,
            ).entries
            assert [(e.kind, e.payment_id) for e in entries] == [
                (ledger_service_pb2.JOURNAL_ENTRY_KIND_LOAN_CREATED, 0),
                *((ledger_service_pb2.JOURNAL_ENTRY_KIND_PAYMENT, p.id) for p in payments),
            ]
        books = ledger.VerifyBooks(ledger_service_pb2.VerifyBooksRequest(), timeout=RPC_TIMEOUT_S)
        assert (books.agree, books.loans_checked) == (True, len(loans)), books
    finally:
        writer.close()

    history = [*seen, *rest]
    _assert_contiguous(history, len(loans))
    for loan_id, weeks in ok.items():
        recorded = [p.settled_week_numbers for p in by_loan[loan_id]]
        # Every payment that answered OK is recorded, and none twice.
        assert recorded[: len(weeks)] == [[week] for week in weeks]
        assert recorded == [[week] for week in range(1, len(recorded) + 1)]
    received = [(e.loan_id, e.payment_id) for e in history if e.kind == RECEIVED]
    assert sorted(received) == sorted(
        (loan_id, p.id) for loan_id, payments in by_loan.items() for p in payments
    )
    print(
        f"\nkill -9: {len(loans)} payers, {answered_ok} payments acknowledged before the kill, "
        f"{len(failed)} cut off and retried, {len(history)} events streamed in order, "
        "0 lost, 0 duplicated"
    )
