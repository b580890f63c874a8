"""The outbox, the sweep and notification streams through a real gRPC channel."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from microfin.loanbilling.v1 import events_pb2, notification_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify
from microfin.loanbilling.v1 import resources_pb2 as pb
from sqlalchemy import func, select

from loanbilling.services.sweep import SweepService
from loanbilling.storage.event_store import NUMBERED_EVENTS
from loanbilling.storage.numbering import number_all
from loanbilling.storage.tables import event_numbers, events
from loanbilling.storage.unit_of_work import sql_storage
from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, new_key, pay, pb_date, py_date

WEEK = dt.timedelta(days=7)
DAY = dt.timedelta(days=1)
ALL_KINDS = [k for k in events_pb2.EventKind.values() if k]
K = events_pb2


def due(week: int) -> dt.date:
    return START + week * WEEK


@pytest.fixture
def notifications(channel):
    return notification_service_pb2_grpc.NotificationServiceStub(channel)


def read_events(notifications, count: int, timeout: float = 10.0, **request):
    """The first `count` events of a stream, then cancels it."""
    stream = notifications.StreamNotifications(
        notify.StreamNotificationsRequest(**request), timeout=timeout
    )
    got = []
    try:
        for message in stream:
            if message.HasField("event"):
                got.append(message.event)
                if len(got) == count:
                    break
    finally:
        stream.cancel()
    return got


def sweep(stub, on: dt.date):
    return stub.RunDelinquencySweep(api.RunDelinquencySweepRequest(as_of=pb_date(on)))


def test_canonical_timeline_of_sweeps_and_events(stub, notifications, clock):
    customer_id = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer_id, START).id

    clock.current = due(1) - DAY  # week 1 is due tomorrow: a reminder
    first = sweep(stub, clock.current)
    assert (first.loans_checked, first.newly_delinquent, first.events_written) == (1, 0, 1)
    assert py_date(first.as_of) == clock.current
    assert sweep(stub, clock.current).events_written == 0  # idempotent

    for week in (1, 2):
        clock.current = due(week)
        pay(stub, loan_id, 110_000)

    clock.current = due(3) + DAY  # week 3 missed: one miss, not delinquent yet
    assert sweep(stub, clock.current).events_written == 1
    clock.current = due(4) + DAY  # week 4 missed too: delinquent
    report = sweep(stub, clock.current)
    assert (report.newly_delinquent, report.events_written) == (1, 2)
    assert sweep(stub, clock.current).events_written == 0
    stored = stub.ListLoans(api.ListLoansRequest(status=pb.LOAN_STATUS_DELINQUENT)).loans
    assert [loan.id for loan in stored] == [loan_id]

    pay(stub, loan_id, 220_000)  # catch up: cured
    assert not stub.ListLoans(api.ListLoansRequest(status=pb.LOAN_STATUS_DELINQUENT)).loans

    # The default stream carries the delinquency-related kinds, in order.
    delinquency = read_events(notifications, 5, loan_id=loan_id)
    assert [(e.kind, e.week_number) for e in delinquency] == [
        (K.EVENT_KIND_PAYMENT_DUE_SOON, 1),
        (K.EVENT_KIND_INSTALLMENT_MISSED, 3),
        (K.EVENT_KIND_INSTALLMENT_MISSED, 4),
        (K.EVENT_KIND_LOAN_DELINQUENT, 3),
        (K.EVENT_KIND_DELINQUENCY_CURED, 4),
    ]
    missed4, delinquent, cured = delinquency[2], delinquency[3], delinquency[4]
    assert py_date(missed4.business_date) == due(4) + DAY
    assert (missed4.amount, py_date(missed4.due_date)) == (110_000, due(4))
    assert (missed4.missed_installments, missed4.overdue_amount) == (2, 220_000)
    assert (missed4.days_past_due, missed4.outstanding_amount) == (8, 5_280_000)
    assert (delinquent.missed_installments, delinquent.days_past_due) == (2, 8)
    assert py_date(delinquent.due_date) == due(3)
    assert (cured.outstanding_amount, cured.payment_id) == (5_060_000, 3)
    assert cured.customer_id == customer_id and cured.currency_code == "IDR"

    # Every event, in strictly increasing sequence without gaps.
    everything = read_events(notifications, 9, kinds=ALL_KINDS)
    assert [e.sequence for e in everything] == list(range(1, 10))
    assert [e.kind for e in everything] == [
        K.EVENT_KIND_LOAN_CREATED,
        K.EVENT_KIND_PAYMENT_DUE_SOON,
        K.EVENT_KIND_PAYMENT_RECEIVED,
        K.EVENT_KIND_PAYMENT_RECEIVED,
        K.EVENT_KIND_INSTALLMENT_MISSED,
        K.EVENT_KIND_INSTALLMENT_MISSED,
        K.EVENT_KIND_LOAN_DELINQUENT,
        K.EVENT_KIND_PAYMENT_RECEIVED,
        K.EVENT_KIND_DELINQUENCY_CURED,
    ]


def test_stream_replays_then_delivers_live_and_resumes_without_gap(stub, notifications, clock):
    customer_id = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer_id, START, weeks=10).id
    replayed = read_events(notifications, 1, kinds=ALL_KINDS)
    assert [e.kind for e in replayed] == [K.EVENT_KIND_LOAN_CREATED]

    # A live stream sees payments as they commit.
    stream = notifications.StreamNotifications(
        notify.StreamNotificationsRequest(after_sequence=1, kinds=ALL_KINDS), timeout=20
    )
    seen: list[int] = []

    def consume():
        for message in stream:
            if message.HasField("event"):
                seen.append(message.event.sequence)
                if len(seen) == 3:
                    return

    reader = threading.Thread(target=consume)
    reader.start()
    for week in (1, 2, 3):
        clock.current = due(week)
        pay(stub, loan_id, 550_000)
    reader.join(15)
    stream.cancel()
    assert seen == [2, 3, 4]

    # Disconnected, the client misses two payments; resuming from 4 gets exactly them.
    for week in (4, 5):
        clock.current = due(week)
        pay(stub, loan_id, 550_000)
    resumed = read_events(notifications, 2, after_sequence=4, kinds=ALL_KINDS)
    assert [(e.sequence, e.week_number) for e in resumed] == [(5, 4), (6, 5)]


def test_stream_filters(stub, notifications, clock):
    first_customer, second_customer = create_customer(stub), create_customer(stub, name="Budi")
    first = create_canonical_loan(stub, first_customer, START).id
    second = create_canonical_loan(stub, second_customer, START).id
    clock.current = due(1)
    pay(stub, second, 110_000)
    pay(stub, first, 110_000)
    by_loan = read_events(notifications, 2, loan_id=first, kinds=ALL_KINDS)
    assert {e.loan_id for e in by_loan} == {first}
    by_customer = read_events(notifications, 2, customer_id=second_customer, kinds=ALL_KINDS)
    assert [e.kind for e in by_customer] == [
        K.EVENT_KIND_LOAN_CREATED,
        K.EVENT_KIND_PAYMENT_RECEIVED,
    ]
    payments = read_events(notifications, 2, kinds=[K.EVENT_KIND_PAYMENT_RECEIVED])
    assert [e.loan_id for e in payments] == [second, first]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (dict(after_sequence=-1), "after_sequence"),
        (dict(loan_id=-5), "loan_id"),
        (dict(kinds=[42]), "kinds"),
    ],
)
def test_stream_refuses_bad_requests(notifications, request_, field):
    with pytest.raises(grpc.RpcError) as refused:
        read_events(notifications, 1, **request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details()


def test_idle_stream_sends_heartbeats(engine, clock):
    from microfin.loanbilling.v1 import loan_service_pb2_grpc

    from tests.support.server import ServerThread

    server = ServerThread(engine, clock, stream_heartbeat_s=0.2).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = loan_service_pb2_grpc.LoanServiceStub(channel)
            create_canonical_loan(stub, create_customer(stub), START)
            stream = notification_service_pb2_grpc.NotificationServiceStub(
                channel
            ).StreamNotifications(
                notify.StreamNotificationsRequest(kinds=[K.EVENT_KIND_PAYMENT_RECEIVED]),
                timeout=10,
            )
            first = next(iter(stream))
            stream.cancel()
        # Nothing matches, but the stream says how far it has looked.
        assert first.HasField("heartbeat")
        assert first.heartbeat.sequence == 1
    finally:
        server.stop()


def test_sweep_refuses_a_future_date(stub, clock):
    with pytest.raises(grpc.RpcError) as refused:
        sweep(stub, clock.current + DAY)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after the business date" in refused.value.details()


def test_concurrent_sweeps_write_each_event_once(engine, billing, clock):
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    loans = [
        billing.create_loan(
            customer_id=customer.id,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            start_date=START,
            request_id=new_key("loan"),
        ).loan.id
        for _ in range(60)
    ]
    clock.current = due(3) + DAY  # weeks 1-3 missed, week 4 due in 6 days
    sweeps = [SweepService(sql_storage(engine), clock, batch_size=7) for _ in range(4)]
    barrier = threading.Barrier(len(sweeps))

    def run(service):
        barrier.wait()
        return service.run()

    with ThreadPoolExecutor(max_workers=len(sweeps)) as pool:
        reports = list(pool.map(run, sweeps))
    assert sum(r.newly_delinquent for r in reports) == len(loans)
    expected = len(loans) * (3 + 1)  # three missed, one delinquent each
    assert sum(r.events_written for r in reports) == expected
    number_all(engine)
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(select(events.c.kind, func.count()).group_by(events.c.kind)).all()
        )
        numbered = conn.execute(
            select(event_numbers.c.sequence).order_by(event_numbers.c.sequence)
        ).scalars()
        numbered = list(numbered)
    assert kinds == {
        "LOAN_CREATED": len(loans),
        "INSTALLMENT_MISSED": 3 * len(loans),
        "LOAN_DELINQUENT": len(loans),
    }
    assert numbered == list(range(1, len(numbered) + 1))


@pytest.mark.parametrize("sequencers", [1, 2], ids=["one-sequencer", "two-sequencers"])
def test_sequences_are_gap_free_under_concurrent_writers(engine, billing, clock, sequencers):
    """Concurrent payments, numbered by one sequencer or by two at once (two
    replicas): every event gets one number, the numbers have no gap, and each
    loan's payments are numbered in the order they were made."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    loans = [
        billing.create_loan(
            customer_id=customer.id,
            principal_amount=500_000,
            interest_rate_bps=1000,
            weeks=10,
            start_date=START,
            request_id=new_key("loan"),
        ).loan.id
        for _ in range(8)
    ]
    clock.current = due(10)
    stop = threading.Event()

    failures = []

    def sequencer():
        try:
            while not stop.is_set():
                number_all(engine)
        except Exception as error:  # noqa: BLE001 - reported by the assert below
            failures.append(error)

    def payer(loan_id):
        for week in range(1, 11):
            billing.make_payment(
                loan_id=loan_id, amount=55_000, idempotency_key=f"{loan_id}-{week}"
            )

    numbering = [threading.Thread(target=sequencer) for _ in range(sequencers)]
    for thread in numbering:
        thread.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(payer, loans))
    stop.set()
    for thread in numbering:
        thread.join()
    assert failures == []
    number_all(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(event_numbers.c.sequence, events.c.loan_id, events.c.week_number, events.c.kind)
            .select_from(NUMBERED_EVENTS)
            .order_by(event_numbers.c.sequence)
        ).all()
    assert [r.sequence for r in rows] == list(range(1, len(rows) + 1))
    # Per loan, payments appear in the order they were made.
    for loan_id in loans:
        weeks = [
            r.week_number for r in rows if r.loan_id == loan_id and r.kind == "PAYMENT_RECEIVED"
        ]
        assert weeks == list(range(1, 11))


def test_stream_refuses_a_cursor_past_the_newest_event(stub, notifications):
    create_canonical_loan(stub, create_customer(stub), START)
    assert read_events(notifications, 1, after_sequence=0, kinds=ALL_KINDS)[0].sequence == 1
    with pytest.raises(grpc.RpcError) as refused:
        read_events(notifications, 1, after_sequence=1000)
    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "past the newest event (1)" in refused.value.details()


def test_a_thousand_streams_and_a_stalled_one_hold_back_no_one(server, stub, clock):
    """1,000 idle subscribers and one that never reads: unary calls still work and
    a reading subscriber still gets every event."""
    import asyncio

    loan_id = create_canonical_loan(
        stub, create_customer(stub), START, weeks=520, principal_amount=52_000_000
    ).id  # 520 installments of 110,000
    clock.current = due(520)
    ready, done = threading.Event(), threading.Event()
    report: dict[str, object] = {}

    async def subscribers() -> None:
        async with grpc.aio.insecure_channel(server.address) as channel:
            streams = notification_service_pb2_grpc.NotificationServiceStub(channel)
            idle = [
                streams.StreamNotifications(notify.StreamNotificationsRequest())
                for _ in range(1000)
            ]
            # Never read: its flow-control window fills and the server's writes wait.
            stalled = streams.StreamNotifications(
                notify.StreamNotificationsRequest(kinds=ALL_KINDS)
            )
            reader = streams.StreamNotifications(notify.StreamNotificationsRequest(kinds=ALL_KINDS))
            ready.set()
            got = 0
            async for message in reader:
                if message.HasField("event"):
                    got += 1
                    if got == 1 + 300:  # the creation, then every payment
                        break
            report["reader"] = got
            for call in [*idle, stalled, reader]:
                call.cancel()
        done.set()

    thread = threading.Thread(target=lambda: asyncio.run(subscribers()))
    thread.start()
    assert ready.wait(30)
    deadline = dt.datetime.now() + dt.timedelta(seconds=30)
    while server.app.hub.subscribers < 1002 and dt.datetime.now() < deadline:
        threading.Event().wait(0.05)
    assert server.app.hub.subscribers == 1002
    for _ in range(300):  # unary calls keep working
        pay(stub, loan_id, 110_000)
    assert done.wait(60), "the reading subscriber fell behind the stalled one"
    thread.join(10)
    assert report["reader"] == 301
