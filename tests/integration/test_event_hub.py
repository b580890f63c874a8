"""The stream hub follows the outbox on a thread of its own, and reads once per numbering."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from loanbilling.domain.events import EventFilter, EventKind
from loanbilling.events.hub import EventHub, Heartbeat
from loanbilling.events.listener import _newest, listen
from loanbilling.storage.database import is_postgresql
from loanbilling.storage.notifications import parse_notice
from loanbilling.storage.numbering import number_all
from loanbilling.storage.outbox import Outbox
from tests.conftest import START
from tests.support.api import new_key
from tests.support.server import ServerThread


class CountingExecutor(ThreadPoolExecutor):
    """A one-thread executor that counts the work handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="hub-test")
        self.submitted = 0
        self.completed = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1

        def counted():
            try:
                return fn(*args, **kwargs)
            finally:
                self.completed += 1

        return super().submit(counted)


def pay_week(billing, loan_id: int, week: int) -> None:
    billing.make_payment(loan_id=loan_id, amount=110_000, idempotency_key=f"{loan_id}-{week}")


@pytest.fixture
def loan_id(billing, clock):
    clock.current = START + dt.timedelta(weeks=10)  # ten installments payable
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    return billing.create_loan(
        customer_id=customer.id,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=START,
        request_id=new_key("loan"),
    ).loan.id


@contextlib.asynccontextmanager
async def running(coroutine):
    """Runs `coroutine` as a task for the block, then cancels it and waits for it."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settle(hub: EventHub | None, until) -> None:
    """Lets the hub's task run until `until()` holds (bounded, not timed)."""
    for _ in range(10_000):
        if until():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the hub did not get there")


async def idle(rounds: int = 20) -> None:
    """Lets every ready callback and task on the loop run a few times."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def quiesce(hub: EventHub, follower: CountingExecutor) -> None:
    """Until the hub waits for a wake: no read of its own in flight or to come."""
    for _ in range(1_000):
        before = follower.submitted
        await settle(hub, lambda: follower.completed == follower.submitted)
        await idle()
        if follower.submitted == before and follower.completed == before:
            return
    raise AssertionError("the hub kept reading")


def test_hub_reads_on_its_own_thread_once_per_numbering(engine, billing, loan_id):
    rpc_workers = CountingExecutor()
    follower = CountingExecutor()

    async def scenario() -> None:
        hub = EventHub(Outbox(engine), rpc_workers, follower=follower, fallback_poll_s=3600)
        async with running(hub.run()):
            newest = number_all(engine).newest  # LOAN_CREATED
            await settle(hub, lambda: hub.last == newest)
            await quiesce(hub, follower)
            start = hub.last  # the ring holds what the hub read after this
            assert rpc_workers.submitted == 0  # the hub's reads are not request work
            reads = follower.submitted

            # The sequencer and the LISTEN connection both announce one numbering:
            pay_week(billing, loan_id, 1)
            done = number_all(engine)
            count, newest = done.count, done.newest
            assert count == 1
            hub.wake(newest)
            hub.wake(newest)
            await settle(hub, lambda: hub.last == newest)
            await idle()
            assert follower.submitted == reads + 1
            assert [e.sequence for e in hub.ring] == list(range(start + 1, newest + 1))

            # A wake for events the hub already holds costs no read; an unknown one does.
            hub.wake(newest - 1)
            await idle()
            assert follower.submitted == reads + 1
            hub.wake()
            await settle(hub, lambda: follower.submitted == reads + 2)
            assert hub.last == newest

            # Events numbered elsewhere (another replica) arrive with their wake.
            pay_week(billing, loan_id, 2)
            pay_week(billing, loan_id, 3)
            done = number_all(engine)
            count, newest = done.count, done.newest
            assert count == 2
            hub.wake(newest)
            await settle(hub, lambda: hub.last == newest)
            assert [e.sequence for e in hub.ring] == list(range(start + 1, newest + 1))
            assert rpc_workers.submitted == 0

    try:
        asyncio.run(scenario())
    finally:
        rpc_workers.shutdown()
        follower.shutdown()


def test_a_stream_replays_on_the_rpc_workers(engine, billing, loan_id):
    """A stream's own reads are request work: not on the hub's single thread."""
    rpc_workers = CountingExecutor()
    follower = CountingExecutor()
    pay_week(billing, loan_id, 1)
    newest = number_all(engine).newest

    async def scenario() -> None:
        hub = EventHub(
            Outbox(engine), rpc_workers, follower=follower, ring_size=1, fallback_poll_s=3600
        )
        async with running(hub.run()):
            await settle(hub, lambda: hub.last == newest)
            stream = hub.subscribe(0, EventFilter(frozenset(EventKind)), heartbeat_s=3600)
            first = await anext(stream)  # before the ring: read from the database
            assert first.sequence == 1
            await stream.aclose()
            assert rpc_workers.submitted >= 1

    try:
        asyncio.run(scenario())
    finally:
        rpc_workers.shutdown()
        follower.shutdown()


def test_the_sequencer_hands_its_events_to_the_hub(engine, billing, loan_id):
    """The local sequencer's events reach the ring without a read when they follow
    on; a gap (another replica numbered in between) makes the hub read."""
    rpc_workers = CountingExecutor()
    follower = CountingExecutor()

    async def scenario() -> None:
        hub = EventHub(Outbox(engine), rpc_workers, follower=follower, fallback_poll_s=3600)
        async with running(hub.run()):
            newest = number_all(engine).newest  # LOAN_CREATED
            await settle(hub, lambda: hub.last == newest)
            await quiesce(hub, follower)
            start, reads = hub.last, follower.submitted

            pay_week(billing, loan_id, 1)
            done = number_all(engine)
            if done.events is None:  # SQLite: the hub reads
                hub.wake(done.newest)
                await settle(hub, lambda: hub.last == done.newest)
            else:
                assert [e.sequence for e in done.events] == list(range(start + 1, done.newest + 1))
                hub.offer(done.events)
                assert hub.last == done.newest  # at once, on the loop
                hub.wake(done.newest)  # the same numbering's NOTIFY
                await idle()
                assert follower.submitted == reads

            # A numbering the hub never saw, then one handed over: the gap is read.
            pay_week(billing, loan_id, 2)
            unseen = number_all(engine)
            pay_week(billing, loan_id, 3)
            done = number_all(engine)
            hub.offer(done.events or [])
            hub.wake(done.newest)
            await settle(hub, lambda: hub.last == done.newest)
            assert unseen.newest < done.newest
            assert [e.sequence for e in hub.ring] == list(range(start + 1, done.newest + 1))
            assert rpc_workers.submitted == 0

    try:
        asyncio.run(scenario())
    finally:
        rpc_workers.shutdown()
        follower.shutdown()


class GatedExecutor(CountingExecutor):
    """Runs nothing until `gate` is set: holds the hub's read in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def submit(self, fn, /, *args, **kwargs):
        def gated():
            self.gate.wait(30)
            return fn(*args, **kwargs)

        return super().submit(gated)


def test_events_handed_over_during_a_read_are_held_once(engine, billing, loan_id):
    rpc_workers = CountingExecutor()
    follower = GatedExecutor()

    async def scenario() -> None:
        hub = EventHub(Outbox(engine), rpc_workers, follower=follower, fallback_poll_s=3600)
        async with running(hub.run()):
            try:
                follower.gate.set()
                newest = number_all(engine).newest  # LOAN_CREATED
                await settle(hub, lambda: hub.last == newest)
                await quiesce(hub, follower)
                start = hub.last
                follower.gate.clear()
                reads = follower.submitted

                pay_week(billing, loan_id, 1)
                done = number_all(engine)
                hub.wake()  # a fallback tick, say: its read waits at the gate
                await settle(hub, lambda: follower.submitted == reads + 1)
                handed = Outbox(engine).events_after(start, limit=100)
                hub.offer(handed)
                assert hub.last == done.newest
                follower.gate.set()  # the read returns the same events
                await quiesce(hub, follower)
                assert follower.submitted == reads + 1
                assert [e.sequence for e in hub.ring] == list(range(start + 1, done.newest + 1))
            finally:
                follower.gate.set()  # a read held at the gate ends before the hub

    try:
        asyncio.run(scenario())
    finally:
        rpc_workers.shutdown()
        follower.shutdown()


def test_listener_passes_the_newest_announced_sequence():
    def newest(*payloads: str) -> int | None:
        return _newest([parse_notice(payload) for payload in payloads])

    assert newest("7 a1", "12 b2", "9 a1") == 12
    assert newest("7", "12") == 12  # a replica of the version before origins
    assert newest("7 a1", "") is None  # unknown: the hub reads
    assert parse_notice("12 b2").origin == "b2"
    assert parse_notice("12").origin is None


def test_server_stop_shuts_the_hub_thread_down(engine, clock):
    running = ServerThread(engine, clock).start()
    worker = running.app.hub_worker
    running.stop()
    with pytest.raises(RuntimeError):  # shut down: takes no more work
        worker.submit(print)


def test_the_listener_skips_its_own_servers_numberings(engine, billing, loan_id):
    if not is_postgresql(engine):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    heard: list[int | None] = []

    async def scenario() -> None:
        async with running(listen(Outbox(engine), heard.append, skip_origin="this-server")):
            await settle(None, lambda: heard == [None])  # listening (the call on connect)
            loop = asyncio.get_running_loop()
            ours = await loop.run_in_executor(None, number_all, engine, 5000, "this-server")
            pay_week(billing, loan_id, 1)
            theirs = await loop.run_in_executor(None, number_all, engine, 5000, "other")
            assert ours.newest < theirs.newest
            # Notifications arrive in commit order: ours, had it not been skipped, first.
            await settle(None, lambda: len(heard) > 1)
            assert heard == [None, theirs.newest]

    asyncio.run(scenario())


class CountingFilter(EventFilter):
    """An EventFilter that counts how often the hub asks it about an event."""

    asked = 0

    def matches(self, event) -> bool:
        CountingFilter.asked += 1
        return super().matches(event)


def test_an_event_costs_only_the_streams_that_can_match_it(engine, billing, loan_id):
    """Two hundred streams on other loans are not looked at for a payment; the
    stream on the paid loan and a stream on every loan get its events, and an idle
    stream's heartbeat says it has examined everything up to the head."""
    every_kind = frozenset(EventKind)
    payments_only = CountingFilter(frozenset({EventKind.PAYMENT_RECEIVED}))
    customer_id = billing.get_loan(loan_id).loan.customer_id

    async def scenario() -> None:
        hub = EventHub(Outbox(engine), ThreadPoolExecutor(2), fallback_poll_s=3600)
        got: dict[str, list] = {}  # events by stream
        beats: dict[str, list[Heartbeat]] = {}

        async def follow(name: str, only: EventFilter, after: int) -> None:
            got[name], beats[name] = [], []
            async for item in hub.subscribe(after, only, heartbeat_s=0.3):
                (beats if isinstance(item, Heartbeat) else got)[name].append(item)

        try:
            async with running(hub.run()):
                head = number_all(engine).newest
                await settle(hub, lambda: hub.last == head)
                others = [CountingFilter(every_kind, 10_000 + i) for i in range(200)]
                streams = [
                    asyncio.create_task(follow(f"other-{i}", only, head))
                    for i, only in enumerate(others)
                ]
                streams += [
                    asyncio.create_task(follow("loan", CountingFilter(every_kind, loan_id), head)),
                    asyncio.create_task(
                        follow("customer", CountingFilter(every_kind, None, customer_id), head)
                    ),
                    asyncio.create_task(follow("any loan", payments_only, head)),
                ]
                await settle(hub, lambda: len(hub._waiting) == 203)
                CountingFilter.asked = 0

                pay_week(billing, loan_id, 1)
                pay_week(billing, loan_id, 2)
                done = number_all(engine)
                hub.wake(done.newest)
                await settle(hub, lambda: len(got["any loan"]) == 2)
                await settle(hub, lambda: len(got["loan"]) == 2 and len(got["customer"]) == 2)
                # The hub asked the three streams that can match each event, and they
                # filtered what they read; a look at every stream would be 203 per event.
                assert CountingFilter.asked <= 2 * 3 * (done.newest - head)
                assert [e.kind for e in got["loan"]] == [EventKind.PAYMENT_RECEIVED] * 2
                assert [e.sequence for e in got["loan"]] == [e.sequence for e in got["customer"]]
                assert all(e.loan_id == loan_id for e in got["any loan"])

                # Its next heartbeat: one sent before the payments were numbered (a
                # busy machine can take longer than a heartbeat to pay) names the old head.
                assert got["other-0"] == []
                beats["other-0"].clear()
                await settle(hub, lambda: beats["other-0"] != [])
                assert beats["other-0"][0].sequence == done.newest
                for stream in streams:
                    stream.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
        finally:
            hub.executor.shutdown()

    asyncio.run(scenario())
