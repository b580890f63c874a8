"""The load client: a separate process driving the server with grpc.aio.

`python -m bench.client TARGET` reads one JSON command a line on stdin and
answers each with one JSON line on stdout:

  {"op": "run", "workload": {...}, "concurrency": 32, "warmup_s": 1, "duration_s": 4,
   "raw": false, "probe_after": null}
      N callers each loop: build a request, await the call, record its latency.
      Calls that complete in the measured window (after the warm-up) count.
      "probe_after": S also follows StreamNotifications after sequence S for
      PAYMENT_RECEIVED and times each accepted payment's event.
      "sweep": {"as_of": "YYYY-MM-DD", "min_calls": N, "max_s": S} replaces the
      timed window by a sweeping one: after the warm-up, RunDelinquencySweep at
      as_of runs back to back (one sweep at a time, on a channel of its own)
      until at least N calls have completed while sweeping (or S seconds have
      passed, or the workload ran out); only those calls count, so every counted
      call overlaps a running sweep. "sweeps" in the answer lists each sweep.
  {"op": "stop"}   ends the running measurement now (it then answers its "run")
  {"op": "exit"}

Payment state (installments left per loan) lives here across runs, so later
phases keep paying valid amounts on the same loans, PayOffLoan (one call
per loan, its exact payoff amount) never sends a loan twice, and ReversePayment
(one call per loan, its middle payment) never sends a payment twice.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import json
import random
import sys
import threading
import time
import uuid

import grpc
from google.type import date_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from microfin.loanbilling.v1 import (
    events_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    resources_pb2,
)

from bench.stats import percentile, summarize

CALL_TIMEOUT_S = 30.0
SWEEP_TIMEOUT_S = 3600.0
INSTALLMENT = 110_000
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]


class Exhausted(Exception):
    """The workload has nothing valid left to send (e.g. every loan paid off)."""


class WrongAnswer(Exception):
    """An OK answer that is not the one the workload knows it must be: an error."""


def _date(text: str | None) -> date_pb2.Date | None:
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


class IdPicker:
    """Uniformly random ids from inclusive ranges [[lo, hi], ...]."""

    def __init__(self, ranges: list[list[int]]) -> None:
        self.ranges = ranges
        self.weights = [hi - lo + 1 for lo, hi in ranges]

    def __call__(self) -> int:
        lo, hi = random.choices(self.ranges, self.weights)[0]
        return random.randint(lo, hi)


class Client:
    def __init__(self, target: str, channels: int = 1) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.loans = loan_service_pb2_grpc.LoanServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        # --client-channels: the no-op and the reads go round-robin over this many
        # connections of their own (a local subchannel pool each: gRPC would
        # otherwise share one), so that `serve --workers N` gets several to spread.
        self.spread = [self.channel] + [
            grpc.aio.insecure_channel(
                target, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(channels - 1)
        ]
        self._turn = itertools.count()
        self.left: dict[int, int] = {}  # installments left to pay, per loan
        self.reversal_sent: set[int] = set()  # payments ReversePayment was sent, ever
        self.keys = itertools.count()
        self.run_id = uuid.uuid4().hex[:8]
        self.stop = asyncio.Event()
        # payment id -> wall time its MakePayment answered OK (probe runs only)
        self.paid_at: dict[int, float] | None = None

    # Workloads: each returns an async callable making one call

    def workload(self, spec: dict):
        rpc = spec["rpc"]
        timeout = CALL_TIMEOUT_S
        if rpc == "health":
            request = health_pb2.HealthCheckRequest()
            checks = [health_pb2_grpc.HealthStub(c).Check for c in self.spread]
            return lambda: checks[next(self._turn) % len(checks)](request, timeout=timeout)
        if rpc in ("get_outstanding", "is_delinquent", "get_loan", "payoff_quote"):
            pick = IdPicker(spec["ids"])
            as_of = _date(spec.get("as_of"))
            name, message = {
                "get_outstanding": ("GetOutstanding", loan_service_pb2.GetOutstandingRequest),
                "is_delinquent": ("IsDelinquent", loan_service_pb2.IsDelinquentRequest),
                "get_loan": ("GetLoan", loan_service_pb2.GetLoanRequest),
                "payoff_quote": ("GetPayoffQuote", loan_service_pb2.GetPayoffQuoteRequest),
            }[rpc]
            methods = [getattr(loan_service_pb2_grpc.LoanServiceStub(c), name) for c in self.spread]
            return lambda: methods[next(self._turn) % len(methods)](
                message(loan_id=pick(), as_of=as_of), timeout=timeout
            )
        if rpc == "list_payments":
            pick = IdPicker(spec["ids"])
            return lambda: self.loans.ListPayments(
                loan_service_pb2.ListPaymentsRequest(loan_id=pick()), timeout=timeout
            )
        if rpc == "create_loan":
            pick = IdPicker([spec["customers"]])
            weeks = spec.get("weeks", 50)
            return lambda: self.loans.CreateLoan(
                loan_service_pb2.CreateLoanRequest(
                    customer_id=pick(),
                    principal_amount=100_000 * weeks,
                    interest_rate_bps=1000,
                    weeks=weeks,
                    request_id=str(uuid.uuid4()),
                ),
                timeout=timeout,
            )
        if rpc == "pay":
            return self._pay_many(spec)
        if rpc == "pay_hot":
            return self._pay_hot(spec)
        if rpc == "pay_off":
            return self._pay_off(spec)
        if rpc == "reverse":
            return self._reverse(spec)
        if rpc == "trial_balance":
            return self._trial_balance(spec)
        raise ValueError(f"unknown rpc {rpc!r}")

    def _init_left(self, lo: int, hi: int, weeks: int, paid: int) -> list[int]:
        ids = list(range(lo, hi + 1))
        for loan_id in ids:
            self.left.setdefault(loan_id, weeks - paid)
        return [i for i in ids if self.left[i] > 0]

    async def _pay(self, loan_id: int, installments: int):
        request = loan_service_pb2.MakePaymentRequest(
            loan_id=loan_id,
            amount=INSTALLMENT * installments,
            idempotency_key=f"bench-{self.run_id}-{next(self.keys)}",
        )
        answer = await self.loans.MakePayment(request, timeout=CALL_TIMEOUT_S)
        if self.paid_at is not None:
            self.paid_at[answer.payment.id] = time.time()
        return answer

    def _pay_many(self, spec: dict):
        """Many loans, none paid by two callers at once; one installment, every 5th call two."""
        lo, hi = spec["loans"]
        queue = collections.deque(self._init_left(lo, hi, spec["weeks"], spec.get("paid", 0)))
        counter = itertools.count()

        async def once():
            if not queue:
                raise Exhausted
            loan_id = queue.popleft()
            k = 2 if self.left[loan_id] >= 2 and next(counter) % 5 == 0 else 1
            try:
                await self._pay(loan_id, k)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    self.left[loan_id] = 0
                else:
                    queue.append(loan_id)
                raise
            self.left[loan_id] -= k
            if self.left[loan_id] > 0:
                queue.append(loan_id)

        return once

    def _pay_hot(self, spec: dict):
        """`hot` loans at a time, each paid by every caller; the next one when paid off."""
        lo, hi = spec["loans"]
        pool = collections.deque(self._init_left(lo, hi, spec["weeks"], spec.get("paid", 0)))
        slots: list[int] = []
        for _ in range(spec["hot"]):
            if pool:
                slots.append(pool.popleft())

        def replace(slot: int, loan_id: int) -> None:
            if slots[slot] == loan_id:
                if not pool:
                    raise Exhausted
                slots[slot] = pool.popleft()

        async def once():
            if not slots:
                raise Exhausted
            slot = random.randrange(len(slots))
            loan_id = slots[slot]
            if self.left[loan_id] <= 0:
                replace(slot, loan_id)
                loan_id = slots[slot]
            try:
                await self._pay(loan_id, 1)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    # Another caller paid the last installment first: a lost race, not a fault.
                    self.left[loan_id] = 0
                    replace(slot, loan_id)
                    return "PAID_OFF_BY_ANOTHER"
                raise
            self.left[loan_id] -= 1
            if self.left[loan_id] <= 0:
                replace(slot, loan_id)

        return once

    def _pay_off(self, spec: dict):
        """Each call pays off the next loan never sent before, with its exact payoff
        amount: under FULL payoff interest the outstanding, INSTALLMENT x the
        installments left, known from the seeded layout (weeks, paid)."""
        lo, hi = spec["loans"]
        queue = collections.deque(self._init_left(lo, hi, spec["weeks"], spec["paid"]))
        paid, payoff = resources_pb2.LOAN_STATUS_PAID, resources_pb2.PAYMENT_KIND_PAYOFF

        async def once():
            if not queue:
                raise Exhausted
            loan_id = queue.popleft()
            amount = INSTALLMENT * self.left[loan_id]
            # Sent once whatever the outcome: a loan found already paid off (a
            # FAILED_PRECONDITION) would be a fault of the bench, and counts as an error.
            self.left[loan_id] = 0
            answer = await self.loans.PayOffLoan(
                loan_service_pb2.PayOffLoanRequest(
                    loan_id=loan_id,
                    amount=amount,
                    idempotency_key=f"bench-payoff-{self.run_id}-{next(self.keys)}",
                ),
                timeout=CALL_TIMEOUT_S,
            )
            if (
                answer.replayed
                or answer.status != paid
                or answer.payment.kind != payoff
                or answer.payment.amount != amount
                or answer.payment.outstanding_amount_after != 0
            ):
                raise WrongAnswer(f"loan {loan_id}: {answer}")

        return once

    def _reverse(self, spec: dict):
        """Each call reverses the payment of week `week` of the next loan never sent
        before (callers share one queue), its id computed from the seeded layout:
        first_payment_id + (loan - lo) x paid + (week - 1). The answer must be that
        payment, reversed and settling nothing, the loan owing `outstanding_after`
        and ACTIVE: anything else is a WRONG_ANSWER."""
        lo, hi = spec["loans"]
        first, paid, week = spec["first_payment_id"], spec["paid"], spec["week"]
        expected = spec["outstanding_after"]

        def payment_of(loan_id: int) -> int:
            return first + (loan_id - lo) * paid + (week - 1)

        # Every slice of an interleaved measurement builds the workload anew.
        queue = collections.deque(
            i for i in range(lo, hi + 1) if payment_of(i) not in self.reversal_sent
        )
        active = resources_pb2.LOAN_STATUS_ACTIVE

        async def once():
            if not queue:
                raise Exhausted
            loan_id = queue.popleft()
            payment_id = payment_of(loan_id)
            # Sent once whatever the outcome: a payment found already reversed (a
            # FAILED_PRECONDITION) would be a fault of the bench, and counts as an error.
            self.reversal_sent.add(payment_id)
            answer = await self.loans.ReversePayment(
                loan_service_pb2.ReversePaymentRequest(
                    payment_id=payment_id,
                    reason="bench: transfer bounced",
                    idempotency_key=f"bench-reverse-{self.run_id}-{next(self.keys)}",
                ),
                timeout=CALL_TIMEOUT_S,
            )
            p = answer.payment
            if (
                answer.replayed
                or p.id != payment_id
                or p.loan_id != loan_id
                or not p.reversed
                or list(p.settled_week_numbers)
                or answer.outstanding_amount != expected
                or answer.status != active
            ):
                raise WrongAnswer(f"payment {payment_id} of loan {loan_id}: {answer}")

        return once

    def _trial_balance(self, spec: dict):
        """GetTrialBalance (as_of: the business date unless given; the books' one
        currency unless named): its five lines must balance."""
        # Imported here: a commit before the journal (an A/B trial) has no LedgerService.
        from microfin.loanbilling.v1 import ledger_service_pb2, ledger_service_pb2_grpc

        stub = ledger_service_pb2_grpc.LedgerServiceStub(self.channel)
        request = ledger_service_pb2.GetTrialBalanceRequest(
            as_of=_date(spec.get("as_of")), currency_code=spec.get("currency_code", "")
        )

        async def once():
            answer = await stub.GetTrialBalance(request, timeout=CALL_TIMEOUT_S)
            if len(answer.lines) != 5 or answer.debit_total != answer.credit_total:
                raise WrongAnswer(f"an unbalanced trial balance: {answer}")

        return once

    # Measuring

    async def run(self, command: dict) -> dict:
        self.stop.clear()
        once = self.workload(command["workload"])
        concurrency = command["concurrency"]
        warmup = command["warmup_s"]
        duration = command["duration_s"]
        probe_after = command.get("probe_after")
        sweep = command.get("sweep")
        perf0, wall0 = time.perf_counter(), time.time()
        warm_end = perf0 + warmup
        deadline = warm_end + duration
        latencies: list[float] = []
        ends: list[float] = []
        errors: collections.Counter = collections.Counter()
        error_samples: dict[str, str] = {}
        outcomes: collections.Counter = collections.Counter()
        exhausted = asyncio.Event()
        cpu0 = time.process_time()
        self.paid_at = {} if probe_after is not None else None
        probe = Probe(self.target, probe_after) if probe_after is not None else None
        if probe:
            await probe.start()
        sweeping = Sweeping(self.target, sweep) if sweep else None

        def counted(t1: float) -> bool:
            if sweeping:
                return sweeping.active
            return warm_end <= t1 <= deadline

        async def caller() -> None:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    outcome = await once()
                    outcome = outcome if isinstance(outcome, str) else None
                    code = None
                except Exhausted:
                    exhausted.set()
                    self.stop.set()
                    return
                except grpc.aio.AioRpcError as error:
                    outcome = None
                    code = error.code().name
                    error_samples.setdefault(code, (error.details() or "")[:300])
                except WrongAnswer as error:
                    outcome = None
                    code = "WRONG_ANSWER"
                    error_samples.setdefault(code, str(error)[:300])
                t1 = time.perf_counter()
                if not counted(t1):
                    continue
                if code is not None:
                    errors[code] += 1
                elif outcome is not None:
                    outcomes[outcome] += 1
                else:
                    latencies.append((t1 - t0) * 1000)
                    ends.append(wall0 + (t1 - perf0))

        async def timer() -> None:
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=warmup + duration)
            except TimeoutError:
                pass
            self.stop.set()

        def measured() -> int:
            return len(latencies) + sum(errors.values()) + sum(outcomes.values())

        ender = sweeping.run(warmup, self.stop, measured) if sweeping else timer()
        started = time.perf_counter()
        await asyncio.gather(ender, *(caller() for _ in range(concurrency)))
        if sweeping:
            window_from, window_to = sweeping.window or (warm_end, warm_end)
        else:
            window_from, window_to = warm_end, min(time.perf_counter(), deadline)
        window = max(window_to - window_from, 1e-9)
        result = summarize(latencies, window, sum(errors.values()))
        result.update(
            errors_by_code=dict(errors),
            error_samples=error_samples,
            outcomes=dict(outcomes),
            exhausted=exhausted.is_set(),
            client_cpu_s=round(time.process_time() - cpu0, 3),
            elapsed_s=round(time.perf_counter() - started, 3),
            window_start=wall0 + (window_from - perf0),
            window_end=wall0 + (window_to - perf0),
        )
        if sweeping:
            result["sweeps"] = sweeping.sweeps
        if command.get("raw"):
            result["raw"] = {"end": ends, "latency_ms": latencies}
        if probe:
            window_paid = {
                pid: t
                for pid, t in self.paid_at.items()
                if result["window_start"] <= t <= result["window_end"]
            }
            result["probe"] = await probe.finish(window_paid)
        self.paid_at = None
        return result


class Sweeping:
    """Delinquency sweeps back to back, so that the measured window is all sweeping.

    `active` is true from the first sweep's request to the last sweep's answer;
    the next sweep is requested as soon as the previous one answers, so the
    server is between sweeps for one round trip at most. Sweeps go on until
    `min_calls` calls completed while active: at every size the phase counts
    calls by construction (a tiny database's sweep can be over before one
    payment answers), while a large one's single sweep is already long enough.
    """

    def __init__(self, target: str, spec: dict) -> None:
        self.target = target
        self.request = loan_service_pb2.RunDelinquencySweepRequest(as_of=_date(spec["as_of"]))
        self.min_calls = spec["min_calls"]
        self.max_s = spec.get("max_s", SWEEP_TIMEOUT_S)
        self.active = False
        self.window: tuple[float, float] | None = None  # perf_counter times
        self.sweeps: list[dict] = []

    async def run(self, warmup: float, stop: asyncio.Event, measured) -> None:
        channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        stub = loan_service_pb2_grpc.LoanServiceStub(channel)
        try:
            try:
                await asyncio.wait_for(stop.wait(), timeout=warmup)
                return  # the workload ran out during the warm-up
            except TimeoutError:
                pass
            start = time.perf_counter()
            self.active = True
            while True:
                t0 = time.perf_counter()
                reply = await stub.RunDelinquencySweep(self.request, timeout=SWEEP_TIMEOUT_S)
                t1 = time.perf_counter()
                self.sweeps.append(
                    {
                        "s": round(t1 - t0, 3),
                        "loans_checked": reply.loans_checked,
                        "events_written": reply.events_written,
                        "newly_delinquent": reply.newly_delinquent,
                        "batches": reply.batches,
                    }
                )
                if measured() >= self.min_calls or stop.is_set() or t1 - start >= self.max_s:
                    break
            self.active = False
            self.window = (start, t1)
        finally:
            self.active = False
            stop.set()
            await channel.close()


class Probe:
    """Follows PAYMENT_RECEIVED events on a stream of its own; times each delivery."""

    def __init__(self, target: str, after_sequence: int) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = notification_service_pb2_grpc.NotificationServiceStub(self.channel)
        self.after = after_sequence
        self.arrived: dict[int, tuple[float, float]] = {}  # payment id -> (created, arrived)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.call = self.stub.StreamNotifications(
            notification_service_pb2.StreamNotificationsRequest(
                after_sequence=self.after, kinds=[events_pb2.EVENT_KIND_PAYMENT_RECEIVED]
            )
        )
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for message in self.call:
            if message.HasField("event"):
                event = message.event
                self.arrived[event.payment_id] = (
                    event.create_time.ToNanoseconds() / 1e9,
                    time.time(),
                )

    async def finish(self, paid_at: dict[int, float], drain_s: float = 10.0) -> dict:
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:  # a bounded drain
            if paid_at.keys() <= self.arrived.keys():
                break
            await asyncio.sleep(0.05)
        self.call.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        await self.channel.close()
        from_create = []
        from_answer = []
        for payment_id, answered in paid_at.items():
            if payment_id in self.arrived:
                created, arrived = self.arrived[payment_id]
                from_create.append((arrived - created) * 1000)
                from_answer.append((arrived - answered) * 1000)
        return {
            "payments": len(paid_at),
            "delivered": len(from_create),
            "missing": len(paid_at) - len(from_create),
            "create_to_delivery_p50_ms": _r(percentile(from_create, 50)),
            "create_to_delivery_p99_ms": _r(percentile(from_create, 99)),
            "create_to_delivery_max_ms": _r(max(from_create, default=None)),
            "answer_to_delivery_p50_ms": _r(percentile(from_answer, 50)),
            "answer_to_delivery_p99_ms": _r(percentile(from_answer, 99)),
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def serve(target: str, channels: int = 1) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(commands.put_nowait, {"op": "exit"})

    threading.Thread(target=read_stdin, daemon=True).start()
    client = Client(target, channels)
    running: asyncio.Task | None = None
    try:
        while True:
            getter = asyncio.ensure_future(commands.get())
            waiting = {getter} | ({running} if running else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if running in done:
                try:
                    answer = running.result()
                except Exception as error:  # noqa: BLE001 - reported to the orchestrator
                    answer = {"failed": f"{type(error).__name__}: {error}"}
                _emit(answer)
                running = None
            if getter not in done:
                getter.cancel()
                continue
            command = getter.result()
            op = command.get("op")
            if op == "run":
                running = asyncio.create_task(client.run(command))
            elif op == "stop":
                client.stop.set()
            elif op == "exit":
                client.stop.set()
                if running:
                    await running
                return
    finally:
        for channel in client.spread:
            await channel.close()


def _emit(answer: dict) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
