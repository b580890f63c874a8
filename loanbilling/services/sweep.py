"""The delinquency sweep: every unpaid loan evaluated at a business date, in
bounded batches of one short transaction each, so payments are never locked
out for long and a crash loses at most one batch (which the next run redoes).
What a batch writes for each loan is loanbilling.domain.sweep.sweep_loan."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from loanbilling.clock import BusinessClock
from loanbilling.domain.errors import InvalidArgument
from loanbilling.storage.interfaces import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    as_of: dt.date
    loans_checked: int = 0
    newly_delinquent: int = 0
    events_written: int = 0
    batches: int = 0


class SweepService:
    def __init__(
        self,
        storage: Storage,
        clock: BusinessClock,
        *,
        batch_size: int = 1000,
        reminder_days: int = 1,
        events_written: Callable[[], None] = lambda: None,
        on_report: Callable[[SweepReport, float], None] = lambda report, seconds: None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.batch_size = batch_size
        self.reminder_days = reminder_days
        self.events_written = events_written
        # Told of every completed sweep and its duration in seconds (metrics).
        self.on_report = on_report

    def run(
        self,
        as_of: dt.date | None = None,
        *,
        progress: Callable[[SweepReport, float, bool], None] | None = None,
    ) -> SweepReport:
        """Sweeps every unpaid loan at `as_of` (default: the business date).
        `progress`, if given, is told after each batch (never per loan) what the
        sweep has done so far and the seconds since it began, then once more with
        `finished` True before the summary is logged."""
        today = self.clock.today()
        as_of = as_of or today
        if as_of > today:
            raise InvalidArgument.of(
                "as_of",
                f"{as_of} is after the business date {today}: a sweep reports what has "
                "happened, it cannot run ahead",
            )
        started = time.perf_counter()
        checked = delinquent = written = batches = 0
        after = 0
        while True:
            batch = self.storage.sweep_batch(
                as_of=as_of,
                after_loan_id=after,
                batch_size=self.batch_size,
                reminder_days=self.reminder_days,
            )
            if batch.last_loan_id is None:
                break
            batches += 1
            checked += batch.loans_checked
            delinquent += batch.newly_delinquent
            written += batch.events_written
            after = batch.last_loan_id
            if batch.events_written:
                self.events_written()
            if progress is not None:
                progress(
                    SweepReport(as_of, checked, delinquent, written, batches),
                    time.perf_counter() - started,
                    False,
                )
        report = SweepReport(as_of, checked, delinquent, written, batches)
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(report, seconds, True)
        self.on_report(report, seconds)
        log.info(
            "sweep at %s: %d loans checked, %d newly delinquent, %d events written, "
            "%d batches in %.1f s (%s loans/s)",
            as_of,
            checked,
            delinquent,
            written,
            batches,
            seconds,
            f"{checked / seconds:,.0f}" if seconds > 0 else "-",
        )
        return report
