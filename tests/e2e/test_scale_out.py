"""Scale-out: three `loanbilling serve` processes on one real PostgreSQL database,
as deploy/kubernetes runs them.

One client spreads payments over the three (a third of them sent to two
replicas at once with the same idempotency key), runs the delinquency sweep on
all three at the same moment while the payments go on and again once they are
done, and follows a notification stream (all kinds, from sequence 0) on each
replica throughout, plus a replay from 0 on each at the end. Then: the books
are exact, every payment acknowledged is recorded once, every event was
written once, and every stream delivered the same complete, gap-free sequence
1..N that the database holds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from google.type import date_pb2
from microfin.loanbilling.v1 import (
    events_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from sqlalchemy import func, select

from loanbilling.storage.database import make_engine
from loanbilling.storage.event_store import NUMBERED_EVENTS
from loanbilling.storage.tables import event_numbers, events, payments, pending_events
from tests.e2e.processes import ServerProcess
from tests.support.api import new_key
from tests.support.books import assert_books_exact

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

REPLICAS = 3
ALL_KINDS = [k for k in events_pb2.EventKind.values() if k != events_pb2.EVENT_KIND_UNSPECIFIED]
KIND = events_pb2.EventKind.Name
# Loans start on a Monday well in the past: installment k is due on START + 7k,
# and every week a test pays (40 at most, due by 2026-10-12) is payable on its
# due date. The business date is today (UTC), whatever day the test runs.
START = dt.date(2026, 1, 5)
WEEKLY = 110_000
HEARTBEAT_S = 0.2
RPC_TIMEOUT_S = 30
SWEEP_KINDS = {"EVENT_KIND_INSTALLMENT_MISSED", "EVENT_KIND_PAYMENT_DUE_SOON"}


@dataclass(frozen=True)
class Load:
    loans: int
    weeks: int  # paid on every loan, one payment per week, in order
    streams_per_replica: int

    def __str__(self) -> str:
        return f"{self.loans}x{self.weeks}"


def _date(day: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def _due(week: int) -> dt.date:
    return START + dt.timedelta(days=7 * week)


def _weeks_due_before(day: dt.date) -> int:
    """Installments whose due date is before `day`: missed by then if unpaid."""
    return min(max(((day - START).days - 1) // 7, 0), 50)


@pytest.fixture
def database(postgres_databases):
    url = postgres_databases.create()
    yield url
    postgres_databases.release(url)


@pytest.fixture
def replicas(database, tmp_path):
    servers: list[ServerProcess] = []
    while len(servers) < REPLICAS:
        server = ServerProcess(
            database,
            tmp_path,
            "--sweep-interval-s", "0",
            "--stream-heartbeat-s", str(HEARTBEAT_S),
            "--db-pool-size", "4",
        )  # fmt: skip
        if server.port not in {s.port for s in servers}:
            servers.append(server)
    try:
        for server in servers:
            server.start()  # all boot at once
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


class Follower:
    """A StreamNotifications call (all kinds) read on a thread of its own."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        stub = notification_service_pb2_grpc.NotificationServiceStub(self.channel)
        self.call = stub.StreamNotifications(
            notification_service_pb2.StreamNotificationsRequest(after_sequence=0, kinds=ALL_KINDS),
            timeout=240,
        )
        self.events: list[events_pb2.Event] = []
        self.heartbeat = -1  # the sequence of the newest heartbeat
        self.error: grpc.RpcError | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                with self.changed:
                    if message.HasField("event"):
                        self.events.append(message.event)
                        self.heartbeat = -1  # only a heartbeat after this event counts
                    else:
                        self.heartbeat = message.heartbeat.sequence
                    self.changed.notify_all()
        except grpc.RpcError as error:
            with self.changed:
                self.error = error
                self.changed.notify_all()

    def wait_idle_at(self, head: int, timeout: float = 30) -> list[events_pb2.Event]:
        """Every event up to the first heartbeat at `head` or beyond that follows the
        last event: an event delivered late or twice would have come before it."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: self.error is not None or self.heartbeat >= head, timeout
            )
            assert self.error is None, f"stream on {self.address} ended: {self.error!r}"
            assert done, (
                f"stream on {self.address}: {len(self.events)} events, heartbeat "
                f"{self.heartbeat}, not idle at {head} after {timeout}s"
            )
            return list(self.events)

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(10)
        self.channel.close()


def _key(event: events_pb2.Event) -> tuple:
    return (event.sequence, KIND(event.kind), event.loan_id, event.week_number, event.payment_id)


@pytest.mark.parametrize(
    "load",
    [
        Load(loans=30, weeks=12, streams_per_replica=2),
        pytest.param(Load(loans=90, weeks=36, streams_per_replica=4), marks=pytest.mark.slow),
    ],
    ids=str,
)
def test_three_replicas_share_the_load_and_every_stream_is_complete(load, replicas, database):
    started = time.monotonic()
    as_of = dt.datetime.now(dt.UTC).date()  # the servers' business date (UTC)
    channels = [grpc.insecure_channel(server.address) for server in replicas]
    stubs = [loan_service_pb2_grpc.LoanServiceStub(channel) for channel in channels]
    followers = [
        Follower(server.address) for server in replicas for _ in range(load.streams_per_replica)
    ]
    try:
        # Customers and loans, created round-robin through the replicas.
        loans = []
        for i in range(load.loans):
            stub = stubs[i % REPLICAS]
            customer = stub.CreateCustomer(
                loan_service_pb2.CreateCustomerRequest(
                    name=f"Borrower {i}", email=f"borrower{i}@example.com"
                ),
                timeout=RPC_TIMEOUT_S,
            ).customer
            loan = stub.CreateLoan(
                loan_service_pb2.CreateLoanRequest(
                    customer_id=customer.id,
                    principal_amount=5_000_000,
                    interest_rate_bps=1000,
                    weeks=50,
                    start_date=_date(START),
                    request_id=new_key("loan"),
                ),
                timeout=RPC_TIMEOUT_S,
            ).loan
            loans.append(loan.id)

        # Payments: one payer per loan, each week through the next replica; every
        # third week sent to two replicas at once with the same key.
        acknowledged: dict[int, list[int]] = {loan_id: [] for loan_id in loans}
        progress = threading.Semaphore(0)

        def pay(index: int, loan_id: int) -> None:
            for week in range(1, load.weeks + 1):
                request = loan_service_pb2.MakePaymentRequest(
                    loan_id=loan_id,
                    amount=WEEKLY,
                    payment_date=_date(_due(week)),
                    idempotency_key=f"scale-{loan_id}-w{week}",
                )
                first = (index + week) % REPLICAS
                targets = [first, (first + 1) % REPLICAS] if week % 3 == 0 else [first]
                calls = [
                    stubs[target].MakePayment.future(request, timeout=RPC_TIMEOUT_S)
                    for target in targets
                ]
                answers = [call.result() for call in calls]
                assert len({answer.payment.id for answer in answers}) == 1, answers
                assert sorted(answer.replayed for answer in answers) == [False] + [True] * (
                    len(answers) - 1
                )
                for answer in answers:
                    assert list(answer.payment.settled_week_numbers) == [week]
                    assert answer.outstanding_amount == 5_500_000 - week * WEEKLY
                acknowledged[loan_id].append(week)
                progress.release()

        sweep_request = loan_service_pb2.RunDelinquencySweepRequest(as_of=_date(as_of))

        def sweep_everywhere() -> list[loan_service_pb2.RunDelinquencySweepResponse]:
            calls = [stub.RunDelinquencySweep.future(sweep_request, timeout=120) for stub in stubs]
            return [call.result() for call in calls]

        total_payments = load.loans * load.weeks
        with ThreadPoolExecutor(max_workers=load.loans) as payers:
            running = [payers.submit(pay, i, loan_id) for i, loan_id in enumerate(loans)]
            # A third of the way in, the sweep on all three replicas at once.
            deadline = time.monotonic() + 60
            for _ in range(total_payments // 3):
                while not progress.acquire(timeout=0.5):
                    for payer in running:
                        if payer.done():
                            payer.result()  # a payer that failed: its error, not a stall
                    assert time.monotonic() < deadline, "the payments stalled"
            during = sweep_everywhere()
            for payer in running:
                payer.result(timeout=120)
        # And once more on all three after the payments: nothing is left to write.
        after = sweep_everywhere()
        load_took = time.monotonic() - started

        assert all(len(weeks) == load.weeks for weeks in acknowledged.values())
        assert [r.loans_checked for r in during] == [load.loans] * REPLICAS
        assert [r.events_written for r in after] == [0] * REPLICAS, after
        assert all(r.as_of == _date(as_of) for r in during + after)

        # The database: books exact, every payment once, every event once.
        engine = make_engine(database, pool_size=2)
        try:
            deadline = time.monotonic() + 10
            while True:  # the sequencers number what committed last within moments
                with engine.connect() as conn:
                    pending = conn.execute(
                        select(func.count()).select_from(pending_events)
                    ).scalar_one()
                if pending == 0:
                    break
                assert time.monotonic() < deadline, f"{pending} events never numbered"
                time.sleep(0.1)
            figures = assert_books_exact(engine)
            with engine.connect() as conn:
                stored = conn.execute(
                    select(
                        event_numbers.c.sequence,
                        events.c.kind,
                        events.c.loan_id,
                        events.c.week_number,
                        events.c.payment_id,
                    )
                    .select_from(NUMBERED_EVENTS)
                    .order_by(event_numbers.c.sequence)
                ).all()
                settled = conn.execute(
                    select(payments.c.loan_id, payments.c.first_week, payments.c.last_week)
                ).all()
        finally:
            engine.dispose()
        assert figures["payments"] == total_payments
        assert sorted(settled) == sorted(
            (loan_id, week, week) for loan_id in loans for week in range(1, load.weeks + 1)
        )
        head = len(stored)
        assert head == figures["events"]
        in_database = [
            (seq, f"EVENT_KIND_{kind}", loan_id, week, payment_id or 0)
            for seq, kind, loan_id, week, payment_id in stored
        ]
        by_kind: dict[str, list[tuple]] = {}
        for row in in_database:
            by_kind.setdefault(row[1], []).append(row)
        assert len(by_kind.pop("EVENT_KIND_LOAN_CREATED")) == load.loans
        # Back-dated loans are delinquent at the business date from creation on,
        # and paying old weeks leaves them so: no cure, no second "delinquent".
        assert len(by_kind.pop("EVENT_KIND_LOAN_DELINQUENT")) == load.loans
        received = by_kind.pop("EVENT_KIND_PAYMENT_RECEIVED")
        assert sorted((loan_id, week) for _, _, loan_id, week, _ in received) == sorted(
            (loan_id, week) for loan_id in loans for week in range(1, load.weeks + 1)
        )
        # Every sweep event was written by exactly one of the concurrent sweeps.
        assert set(by_kind) <= SWEEP_KINDS, set(by_kind)
        sweep_events = [row for kind in SWEEP_KINDS for row in by_kind.get(kind, [])]
        assert sum(r.events_written for r in during) == len(sweep_events)
        # Per loan, the missed weeks are those unpaid when the sweep got to the
        # loan: from some week after the last paid one up to the last one due.
        due = _weeks_due_before(as_of)
        for loan_id in loans:
            missed = sorted(
                week
                for _, kind, loan, week, _ in by_kind.get("EVENT_KIND_INSTALLMENT_MISSED", [])
                if loan == loan_id
            )
            assert missed == list(range(due - len(missed) + 1, due + 1)), (loan_id, missed)
            assert due - len(missed) <= load.weeks, (loan_id, missed)

        # Every stream: exactly the database's events 1..N, in order, once each.
        followers += [Follower(server.address) for server in replicas]  # replays from 0
        for follower in followers:
            streamed = [_key(event) for event in follower.wait_idle_at(head)]
            assert [row[0] for row in streamed] == list(range(1, head + 1)), follower.address
            assert streamed == in_database, follower.address
        took = time.monotonic() - started
    finally:
        for follower in followers:
            follower.close()
        for channel in channels:
            channel.close()
    print(
        f"\nscale-out {load}: {REPLICAS} replicas, {total_payments} payments "
        f"({total_payments // 3} sent twice) in {load_took:.1f}s, {len(sweep_events)} sweep "
        f"events from {REPLICAS} concurrent sweeps, {head} events on {len(followers)} streams, "
        f"all complete; {took:.1f}s in all"
    )
