"""Run sizes: --tiny (a smoke of seconds), the default (a few minutes), --full."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Workloads measured interleaved run in this many slices, each after a warm-up of
# at most this many seconds (bench/run.py, Bench.measure_interleaved).
INTERLEAVED_ROUNDS = 2
INTERLEAVED_WARMUP_MAX_S = 0.5


@dataclass(frozen=True)
class Size:
    name: str
    # Stage A, the small database: exactly these loans.
    read_loans: int  # 50 weeks, 18 paid: GetLoan/ListPayments targets
    history_loans: int  # 520 weeks, each of "1 paid" and "520 paid"
    # Stage B, the large database: stage A plus these, then filler up to total_loans.
    pay_loans: int  # 50 weeks, all due and unpaid: MakePayment capacity 50 each
    hot_loans: int  # the same shape, paid a few at a time by every caller
    # The same shape again, paid by pgbench replaying a payment's statements
    # (bench/dblimit.py), 50 payments each: enough for ~10,000 payments/s in every
    # slice, one more for the captured payment.
    replay_loans: int
    # PayOffLoan: one loan per call, never reused: payoff_loans (below) holds this
    # many calls per second of the workload's slices, warm-ups included.
    payoff_calls_per_s: int
    # ReversePayment: likewise one loan (its middle payment) per call: reverse_loans.
    reverse_calls_per_s: int
    total_loans: int
    filler_weeks: int
    # Load.
    streams: int
    hot_slots: int
    concurrency: int
    duration_s: float
    warmup_s: float

    @property
    def small_loans(self) -> int:
        return self.read_loans + 2 * self.history_loans

    def _one_shot_loans(self, calls_per_s: int) -> int:
        """Loans for a workload that uses up one loan per call: enough for `calls_per_s`
        throughout the interleaved slices, plus one in flight per caller."""
        slot = max(self.duration_s / INTERLEAVED_ROUNDS, 0.2)
        warmup = min(self.warmup_s, INTERLEAVED_WARMUP_MAX_S)
        seconds = INTERLEAVED_ROUNDS * (warmup + slot)
        return math.ceil(calls_per_s * seconds) + self.concurrency

    @property
    def payoff_loans(self) -> int:
        """Loans of the `payoff` group (PayOffLoan, one call each)."""
        return self._one_shot_loans(self.payoff_calls_per_s)

    @property
    def reverse_loans(self) -> int:
        """Loans of the `reverse` group (ReversePayment of one payment each)."""
        return self._one_shot_loans(self.reverse_calls_per_s)

    def with_overrides(self, **changes) -> Size:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


TINY = Size(
    name="tiny",
    read_loans=80,
    history_loans=10,
    pay_loans=60,
    hot_loans=20,
    replay_loans=201,
    payoff_calls_per_s=800,
    reverse_calls_per_s=800,
    total_loans=2_000,
    filler_weeks=10,
    streams=20,
    hot_slots=2,
    concurrency=4,
    duration_s=0.6,
    warmup_s=0.2,
)

DEFAULT = Size(
    name="default",
    read_loans=800,
    history_loans=100,
    pay_loans=600,
    hot_loans=100,
    replay_loans=1_601,
    payoff_calls_per_s=2_000,
    reverse_calls_per_s=2_000,
    total_loans=100_000,
    filler_weeks=10,
    streams=1_000,
    hot_slots=4,
    concurrency=32,
    duration_s=4.0,
    warmup_s=1.0,
)

FULL = Size(
    name="full",
    read_loans=800,
    history_loans=100,
    pay_loans=3_000,
    hot_loans=300,
    replay_loans=4_801,
    payoff_calls_per_s=2_000,
    reverse_calls_per_s=2_000,
    total_loans=1_000_000,
    filler_weeks=10,
    streams=1_000,
    hot_slots=4,
    concurrency=32,
    duration_s=15.0,
    warmup_s=2.0,
)
