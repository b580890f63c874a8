"""The `loanbilling` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
from dataclasses import fields

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from loanbilling import logs
from loanbilling.clock import BusinessClock
from loanbilling.config import Settings, add_flags
from loanbilling.domain.errors import DomainError
from loanbilling.services.sweep import SweepService
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
    return parser


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
        from loanbilling.server import serve

        asyncio.run(serve(settings))
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
    try:
        report = sweeps.run(as_of)
    finally:
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


if __name__ == "__main__":
    sys.exit(main())
