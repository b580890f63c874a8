"""The `loanbilling` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from loanbilling.config import Settings, add_flags
from loanbilling.storage.database import make_engine
from loanbilling.storage.migrate import SchemaMismatch, current_revision, head_revision, upgrade

log = logging.getLogger("loanbilling")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loanbilling", description="Loan billing engine served over gRPC."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gRPC API until SIGTERM/SIGINT")
    add_flags(
        serve,
        "listen",
        "database_url",
        "time_zone",
        "log_level",
        "db_pool_size",
        "shutdown_grace_s",
        "health_interval_s",
    )
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    add_flags(migrate, "database_url", "log_level")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(args)
    except ValueError as error:
        print(f"loanbilling: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "migrate":
            return _migrate(settings)
        from loanbilling.server import serve

        asyncio.run(serve(settings))
        return 0
    except SchemaMismatch as error:
        print(f"loanbilling: {error}", file=sys.stderr)
        return 3
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


if __name__ == "__main__":
    sys.exit(main())
