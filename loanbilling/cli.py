"""The `loanbilling` command: serve, migrate, sweep, verify-books, export-journal."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import fields
from typing import TextIO

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from loanbilling import logs
from loanbilling.clock import BusinessClock
from loanbilling.config import Settings, add_flags
from loanbilling.domain.errors import DomainError
from loanbilling.services.ledger import LedgerService
from loanbilling.services.sweep import SweepReport, SweepService
from loanbilling.storage.database import make_engine
from loanbilling.storage.migrate import (
    SchemaMismatch,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from loanbilling.storage.numbering import number_all
from loanbilling.storage.unit_of_work import sql_storage

log = logging.getLogger("loanbilling")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loanbilling", description="Loan billing engine served over gRPC."
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gRPC API until SIGTERM/SIGINT")
    add_flags(serve, *(f.name for f in fields(Settings)))
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    add_flags(migrate, "database_url", "log_level", "log_format")
    sweep = commands.add_parser(
        "sweep", help="run the delinquency sweep once (for cron) and print what it did"
    )
    add_flags(
        sweep,
        "database_url",
        "time_zone",
        "log_level",
        "log_format",
        "sweep_batch_size",
        "reminder_days",
    )
    sweep.add_argument(
        "--as-of",
        type=_date,
        default=None,
        help="business date to sweep at (YYYY-MM-DD); default: today in --time-zone",
    )
    verify = commands.add_parser(
        "verify-books",
        help="reconcile the journal with every loan's state; exit 0 when they agree, "
        "1 with the differences listed (JSON on standard output)",
    )
    add_flags(verify, "database_url", "time_zone", "log_level", "log_format")
    export = commands.add_parser(
        "export-journal",
        help="write the journal entries dated FROM..TO as CSV, one row per line",
    )
    add_flags(export, "database_url", "time_zone", "log_level", "log_format")
    export.add_argument(
        "--from", dest="from_date", type=_date, required=True, help="first entry date (YYYY-MM-DD)"
    )
    export.add_argument(
        "--to", dest="to_date", type=_date, required=True, help="last entry date (YYYY-MM-DD)"
    )
    export.add_argument(
        "--output", default="-", help="file to write the CSV to; default: standard output"
    )
    return parser


def _version() -> str:
    """The package's version and the contract (protobuf package) it serves."""
    from importlib.metadata import PackageNotFoundError, version

    from microfin.loanbilling.v1 import loan_service_pb2

    try:
        release = version("loanbilling")
    except PackageNotFoundError:  # run from a checkout without installing
        release = "unknown"
    return f"loanbilling {release} (contract {loan_service_pb2.DESCRIPTOR.package})"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-02-03") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(args)
    except ValueError as error:
        print(f"loanbilling: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "sweep":
            return _sweep(settings, args.as_of)
        if args.command == "verify-books":
            return _verify_books(settings)
        if args.command == "export-journal":
            return _export_journal(settings, args.from_date, args.to_date, args.output)
        if settings.workers > 1:
            from loanbilling.workers import serve_workers

            return serve_workers(settings)
        from loanbilling.server import new_event_loop, serve

        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(settings))
        return 0
    except SchemaMismatch as error:
        print(f"loanbilling: {error}", file=sys.stderr)
        return 3
    except DomainError as error:
        print(f"loanbilling: {error.message}", file=sys.stderr)
        return 2
    except (OperationalError, InterfaceError) as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        print(f"loanbilling: cannot reach the database: {reason}", file=sys.stderr)
        return 4
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        print(f"loanbilling: the database refused: {reason}", file=sys.stderr)
        return 5
    except (ValueError, OSError) as error:
        print(f"loanbilling: {error}", file=sys.stderr)
        return 2


def _migrate(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    before = current_revision(engine)
    upgrade(engine)
    log.info("schema at %s (was %s)", head_revision(), before or "empty")
    engine.dispose()
    return 0


def _sweep(settings: Settings, as_of: dt.date | None) -> int:
    engine = make_engine(settings.database_url)
    check_schema(engine)
    sweeps = SweepService(
        sql_storage(engine),
        BusinessClock(settings.time_zone),
        batch_size=settings.sweep_batch_size,
        reminder_days=settings.reminder_days,
        # Number this run's events as it goes: no server needs to be running.
        events_written=lambda: number_all(engine),
    )
    # On a terminal, a progress line; elsewhere (cron, a pipe, a log file) only the
    # summary the sweep logs when it ends.
    progress = SweepProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = sweeps.run(as_of, progress=progress)
    finally:
        if progress is not None:
            progress.close()
        engine.dispose()
    print(
        json.dumps(
            {
                "as_of": report.as_of.isoformat(),
                "loans_checked": report.loans_checked,
                "newly_delinquent": report.newly_delinquent,
                "events_written": report.events_written,
                "batches": report.batches,
            }
        )
    )
    return 0


class SweepProgress:
    """The sweep's progress on a terminal: one line, rewritten in place after a
    batch at most every `interval_s` (and after the first and the last batch),
    with the batches done, the loans checked and the rate. Per batch, never per
    loan: the sweep's speed is unchanged."""

    def __init__(self, stream: TextIO, *, interval_s: float = 0.5) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.shown_at: float | None = None
        self.open = False  # a line is on screen without its newline

    def __call__(self, report: SweepReport, seconds: float, finished: bool) -> None:
        now = time.monotonic()
        if not finished and self.shown_at is not None and now - self.shown_at < self.interval_s:
            return
        self.shown_at = now
        rate = f"{report.loans_checked / seconds:,.0f}" if seconds > 0 else "-"
        self.stream.write(
            f"\r\x1b[Ksweep at {report.as_of}: {report.batches:,} "
            f"{'batch' if report.batches == 1 else 'batches'}, "
            f"{report.loans_checked:,} loans checked, {rate} loans/s, "
            f"{report.newly_delinquent:,} newly delinquent, {report.events_written:,} events"
            + (f" ({seconds:.1f} s, done)\n" if finished else "")
        )
        self.stream.flush()
        self.open = not finished

    def close(self) -> None:
        """Ends the line, when a failure stopped the sweep before its last batch."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def _ledger(settings: Settings):
    engine = make_engine(settings.database_url)
    check_schema(engine)
    return engine, LedgerService(sql_storage(engine), BusinessClock(settings.time_zone))


def _verify_books(settings: Settings) -> int:
    engine, ledger = _ledger(settings)
    try:
        report = ledger.verify_books()
    finally:
        engine.dispose()
    differences = [
        {
            "loan_id": d.loan_id,
            "account": d.account.value,
            "expected": d.expected,
            "posted": d.posted,
            "currency_code": d.currency_code,
        }
        for d in report.differences
    ]
    print(
        json.dumps(
            {
                "loans_checked": report.loans_checked,
                "agree": report.agree,
                "differences": differences,
            }
        )
    )
    if not report.agree:
        print(
            f"loanbilling: the books differ from the loans' state in {len(differences)} "
            "account(s); see the differences above",
            file=sys.stderr,
        )
        return 1
    return 0


# One row per journal line: what a spreadsheet or an accounting import reads.
JOURNAL_CSV_COLUMNS = (
    "entry_id",
    "entry_date",
    "loan_id",
    "kind",
    "payment_id",
    "currency_code",
    "account",
    "debit_amount",
    "credit_amount",
)


def _export_journal(settings: Settings, from_date: dt.date, to_date: dt.date, output: str) -> int:
    engine, ledger = _ledger(settings)
    out = None
    try:
        entries = ledger.entries_between(from_date, to_date)  # a bad range writes nothing
        out = sys.stdout if output == "-" else open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(JOURNAL_CSV_COLUMNS)
        for entry in entries:
            for line in entry.lines:
                writer.writerow(
                    (
                        entry.id,
                        entry.entry_date.isoformat(),
                        entry.loan_id,
                        entry.kind.value,
                        entry.payment_id or "",
                        entry.currency_code,
                        line.account.value,
                        line.debit_amount,
                        line.credit_amount,
                    )
                )
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
