"""The AMQP relay against the machine's real RabbitMQ, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
import uuid
from dataclasses import fields

import grpc
import pytest
from microfin.loanbilling.v1 import events_pb2, loan_service_pb2_grpc
from sqlalchemy import select, text

from loanbilling.config import Settings
from loanbilling.contract.events import event_to_pb
from loanbilling.domain.events import Event
from loanbilling.events.relay import CURSOR_NAME, AmqpRelay, routing_key
from loanbilling.storage.consumer_cursors import advance_cursor, read_cursor
from loanbilling.storage.database import make_engine, transaction
from loanbilling.storage.numbering import number_all
from loanbilling.storage.outbox import Outbox
from loanbilling.storage.tables import consumer_cursors
from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, new_key, pay
from tests.support.rabbitmq import (
    AMQP_URL,
    LoopThread,
    Tap,
    broker_lock,
    broker_stopped,
    require_rabbitmq,
    require_rabbitmqctl,
    wait_until,
)
from tests.support.server import ServerThread

# Relays under test: slow fallback tick (new events arrive because of wake()),
# quick leadership polls and short backoffs.
FAST = dict(tick_s=30.0, leader_poll_s=0.3, min_backoff_s=0.1, max_backoff_s=0.5)


@pytest.fixture
def broker(request):
    """The broker, shared with the other RabbitMQ tests, or (param "exclusive")
    alone, for a test that stops it."""
    exclusive = getattr(request, "param", "shared") == "exclusive"
    with broker_lock(exclusive=exclusive):  # first: another run may have it stopped
        require_rabbitmq()
        if exclusive:
            require_rabbitmqctl()
        yield


@pytest.fixture
def aio():
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def exchange():
    return f"lb-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tap(broker, aio, exchange):
    queue = Tap(aio, exchange, "loanbilling.v1.event.#").open()
    yield queue
    queue.close()


class Relays:
    """Starts relays as tasks on the test loop; stops those still running at teardown."""

    def __init__(self, aio: LoopThread, exchange: str) -> None:
        self.aio = aio
        self.exchange = exchange
        self.running: dict[AmqpRelay, object] = {}

    def start(self, engine, *, url: str = AMQP_URL, **options) -> AmqpRelay:
        relay = AmqpRelay(Outbox(engine), url, exchange=self.exchange, **{**FAST, **options})
        self.running[relay] = self.aio.spawn(relay.run(), name="relay")
        return relay

    def stop(self, relay: AmqpRelay) -> None:
        task = self.running.pop(relay)
        assert not task.done(), f"the relay stopped by itself: {task}"
        started = time.monotonic()
        self.aio.stop_task(task)
        assert time.monotonic() - started < 5, "the relay was slow to stop"

    def stop_all(self) -> None:
        for relay in list(self.running):
            self.stop(relay)


@pytest.fixture
def relays(aio, exchange):
    started = Relays(aio, exchange)
    yield started
    started.stop_all()


def write_events(billing, engine, *, loans: int, tag: str) -> None:
    """Two events a loan (created, payment received), numbered."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    for n in range(loans):
        loan = billing.create_loan(
            customer_id=customer.id,
            principal_amount=5_000_000,
            interest_rate_bps=1000,
            weeks=50,
            start_date=START,
            request_id=new_key("loan"),
        ).loan
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key=f"{tag}-{n}")
    number_all(engine)


def stored(engine, after: int = 0) -> list[Event]:
    return Outbox(engine).events_after(after, limit=100_000)


def cursor_of(engine) -> int:
    with transaction(engine, write=False) as conn:
        return read_cursor(conn, CURSOR_NAME)


def assert_relayed(received, expected: list[Event]) -> None:
    """Each event once, in sequence order, as the documented message."""
    assert [m.message_id for m in received] == [str(e.sequence) for e in expected]
    for message, event in zip(received, expected, strict=True):
        assert message.routing_key == routing_key(event.kind)
        assert message.routing_key == f"loanbilling.v1.event.{event.kind.value.lower()}"
        assert message.content_type == "application/x-protobuf"
        assert message.type == "microfin.loanbilling.v1.Event"
        assert message.delivery_mode == 2
        assert message.headers == {
            "sequence": event.sequence,
            "kind": event.kind.value,
            "loan_id": event.loan_id,
        }
        assert events_pb2.Event.FromString(message.body) == event_to_pb(event)


def test_relays_every_event_once_in_order(engine, billing, relays, tap):
    write_events(billing, engine, loans=7, tag="a")  # 14 events: pages of 4
    expected = stored(engine)
    assert {e.kind.value for e in expected} == {"LOAN_CREATED", "PAYMENT_RECEIVED"}

    relay = relays.start(engine, page_size=4)
    assert_relayed(tap.take(len(expected)), expected)
    wait_until(lambda: cursor_of(engine) == expected[-1].sequence, timeout_s=5, what="the cursor")
    assert relay.leading


def wait_idle(relay: AmqpRelay) -> None:
    """Until it leads and has read the outbox once, so that what follows is news to it."""
    wait_until(lambda: relay.last_confirmed is not None, timeout_s=5, what="the relay to lead")
    time.sleep(0.2)


def test_new_events_arrive_on_wake_or_on_the_fallback_tick(engine, billing, relays, tap):
    woken = relays.start(engine)  # a 30 s tick: only wake() brings events in time
    wait_idle(woken)
    write_events(billing, engine, loans=2, tag="a")
    woken.wake()
    assert_relayed(tap.take(4, timeout_s=5), stored(engine))
    relays.stop(woken)

    ticking = relays.start(engine, tick_s=0.3)  # nobody wakes this one
    wait_idle(ticking)
    before = cursor_of(engine)
    write_events(billing, engine, loans=1, tag="b")
    assert_relayed(tap.take(2, timeout_s=5), stored(engine, before))


def test_restart_resumes_after_the_last_confirmed_event(engine, billing, relays, tap):
    write_events(billing, engine, loans=3, tag="a")
    first = stored(engine)
    relay = relays.start(engine)
    assert_relayed(tap.take(len(first)), first)
    wait_until(lambda: relay.last_confirmed == first[-1].sequence, timeout_s=5, what="confirms")
    relays.stop(relay)
    assert cursor_of(engine) == first[-1].sequence

    write_events(billing, engine, loans=2, tag="b")  # while no relay runs
    relays.start(engine)  # a new instance: the cursor is all it knows
    assert_relayed(tap.take(4, settle_s=0.5), stored(engine, first[-1].sequence))
    wait_until(
        lambda: cursor_of(engine) == stored(engine)[-1].sequence, timeout_s=5, what="the cursor"
    )


@pytest.mark.parametrize("broker", ["exclusive"], indirect=True)
def test_events_written_while_the_broker_is_down_arrive_after(engine, billing, relays, tap):
    write_events(billing, engine, loans=1, tag="a")
    relay = relays.start(engine)
    first = stored(engine)
    assert_relayed(tap.take(len(first)), first)
    wait_until(lambda: relay.last_confirmed == first[-1].sequence, timeout_s=5, what="confirms")

    with broker_stopped():
        write_events(billing, engine, loans=3, tag="b")
        relay.wake()
        time.sleep(0.5)  # it tries, fails, backs off, retries
        assert cursor_of(engine) == first[-1].sequence
        assert not relays.running[relay].done()  # outages never end the relay

    assert_relayed(tap.take(6, timeout_s=15, settle_s=0.5), stored(engine, first[-1].sequence))
    wait_until(
        lambda: cursor_of(engine) == stored(engine)[-1].sequence, timeout_s=5, what="the cursor"
    )


def test_an_unreachable_broker_is_retried_not_raised(engine, billing, relays):
    write_events(billing, engine, loans=1, tag="a")
    relay = relays.start(engine, url="amqp://guest:guest@127.0.0.1:1/", tick_s=0.1)
    time.sleep(1.0)
    assert relay.last_confirmed is None
    assert cursor_of(engine) == 0
    relays.stop(relay)  # asserts it was still running, and stops promptly


def test_the_cursor_only_moves_forward(engine):
    with transaction(engine, write=True) as conn:
        advance_cursor(conn, "test", 5)  # inserts
    with transaction(engine, write=True) as conn:
        advance_cursor(conn, "test", 3)  # a deposed leader, late: ignored
    with transaction(engine, write=False) as conn:
        assert read_cursor(conn, "test") == 5
        assert read_cursor(conn, "other") == 0
    with transaction(engine, write=True) as conn:
        advance_cursor(conn, "test", 9)
    with transaction(engine, write=False) as conn:
        assert read_cursor(conn, "test") == 9
        assert conn.execute(select(consumer_cursors.c.updated_at)).scalar_one() is not None


def test_refuses_a_url_that_is_not_amqp(engine):
    with pytest.raises(ValueError, match="not an AMQP URL"):
        AmqpRelay(Outbox(engine), "http://127.0.0.1:5672/")


def advisory_holders(engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            ).scalars()
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_replicas_relay_one_at_a_time(database_url, engine, billing, relays, tap):
    other_replica = make_engine(database_url, pool_size=2)
    try:
        first = relays.start(engine)
        second = relays.start(other_replica)

        def leaders() -> list[AmqpRelay]:
            return [r for r in (first, second) if r.leading]

        wait_until(lambda: len(leaders()) == 1, timeout_s=5, what="one leader")
        time.sleep(1.0)  # several leadership polls later, still one
        assert len(leaders()) == 1 and len(advisory_holders(engine)) == 1

        for batch in range(3):
            write_events(billing, engine, loans=2, tag=f"a{batch}")
            first.wake()
            second.wake()
        assert_relayed(tap.take(12, settle_s=0.5), stored(engine))

        # The leader's session dies (a failover, a network cut): the lock goes with
        # it, a relay takes over (either one), and nothing is sent twice.
        leader = leaders()[0]
        wait_until(
            lambda: leader.last_confirmed == stored(engine)[-1].sequence,
            timeout_s=5,
            what="confirms",
        )
        (pid,) = advisory_holders(engine)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_until(
            lambda: (holders := advisory_holders(engine)) != [] and holders != [pid],
            timeout_s=5,
            what="a new leader's lock",
        )
        first.wake()
        second.wake()  # the deposed one notices at its next round
        wait_until(lambda: len(leaders()) == 1, timeout_s=5, what="one leader again")

        before = stored(engine)[-1].sequence
        write_events(billing, engine, loans=2, tag="b")
        first.wake()
        second.wake()
        assert_relayed(tap.take(4, settle_s=0.5), stored(engine, before))
    finally:
        relays.stop_all()
        other_replica.dispose()


@pytest.mark.skipif(
    "amqp_url" not in {f.name for f in fields(Settings)},
    reason="the server does not start the relay yet (Settings has no amqp_url)",
)
def test_a_server_relays_what_its_api_writes(engine, clock, exchange, tap):
    running = ServerThread(engine, clock, amqp_url=AMQP_URL, amqp_exchange=exchange).start()
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = loan_service_pb2_grpc.LoanServiceStub(channel)
            loan = create_canonical_loan(stub, create_customer(stub), START)
            pay(stub, loan.id, 110_000)
            # Committed, numbered by the server's sequencer, relayed on its wake-up.
            received = tap.take(2, timeout_s=5)
    finally:
        running.stop()
    assert [m.routing_key for m in received] == [
        "loanbilling.v1.event.loan_created",
        "loanbilling.v1.event.payment_received",
    ]
    assert_relayed(received, stored(engine))
