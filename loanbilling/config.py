"""Settings from command-line flags, LOANBILLING_* environment variables and defaults,
in that order of precedence."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LOANBILLING_"


@dataclass(frozen=True)
class Settings:
    # host:port to listen on; "localhost" binds both 127.0.0.1 and ::1.
    listen: str = "localhost:50051"
    # sqlite:///loanbilling.db (the default, no setup) or postgresql://user@host/db
    database_url: str = "sqlite:///loanbilling.db"
    # IANA zone whose calendar date is the business date.
    time_zone: str = "UTC"
    log_level: str = "INFO"
    # Database connections, and the worker threads that use them.
    db_pool_size: int = 8
    # Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    shutdown_grace_s: float = 10.0
    # Seconds between database checks behind the health service.
    health_interval_s: float = 5.0
    # Seconds between delinquency sweeps inside `serve`; 0 turns them off.
    sweep_interval_s: float = 3600.0
    # Loans per sweep transaction.
    sweep_batch_size: int = 1000
    # A "payment due soon" reminder goes out this many days before a due date.
    reminder_days: int = 1
    # Seconds of silence after which a notification stream sends a heartbeat.
    stream_heartbeat_s: float = 15.0
    # RabbitMQ to relay every event to (amqp://user:password@host:5672/vhost); empty: none.
    amqp_url: str = ""
    # The durable topic exchange the relay publishes to.
    amqp_exchange: str = "loanbilling.events"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time zone {self.time_zone!r} is not an IANA zone such as UTC or Asia/Jakarta"
            ) from None
        if self.db_pool_size < 1:
            raise ValueError("db_pool_size must be 1 or more")
        if self.sweep_interval_s < 0:
            raise ValueError("sweep_interval_s must be 0 (off) or more")
        if self.sweep_batch_size < 1:
            raise ValueError("sweep_batch_size must be 1 or more")
        if not 0 <= self.reminder_days <= 6:
            raise ValueError("reminder_days must be between 0 and 6")
        if self.stream_heartbeat_s <= 0:
            raise ValueError("stream_heartbeat_s must be more than 0")
        if self.amqp_url and not self.amqp_url.startswith(("amqp://", "amqps://")):
            raise ValueError("amqp_url must be empty (no relay) or amqp://user:password@host/")
        if not self.amqp_exchange:
            raise ValueError("amqp_exchange must not be empty")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")

    @classmethod
    def load(
        cls, flags: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = getattr(flags, field.name, None) if flags is not None else None
            if raw is None:
                raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            kind = type(field.default)
            try:
                values[field.name] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}{field.name.upper()} / --{field.name.replace('_', '-')}: "
                    f"{raw!r} is not a valid {kind.__name__}"
                ) from None
        return cls(**values)


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds --flag options for the named settings; unset flags fall back to the environment."""
    by_name = {f.name: f for f in fields(Settings)}
    for name in names:
        field = by_name[name]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=f"default: ${ENV_PREFIX}{name.upper()} or {field.default!r}",
        )
