"""Settings from command-line flags, LOANBILLING_* environment variables and defaults,
in that order of precedence."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LOANBILLING_"
MAX_WORKERS = 64


@dataclass(frozen=True)
class Settings:
    # host:port to listen on; "localhost" binds both 127.0.0.1 and ::1.
    listen: str = "localhost:50051"
    # sqlite:///loanbilling.db (the default, no setup) or postgresql://user@host/db
    database_url: str = "sqlite:///loanbilling.db"
    # IANA zone whose calendar date is the business date.
    time_zone: str = "UTC"
    log_level: str = "INFO"
    # Database connections for calls (on SQLite, and the worker threads that use them).
    db_pool_size: int = 8
    # Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    shutdown_grace_s: float = 10.0
    # Seconds between database checks behind the health service.
    health_interval_s: float = 5.0
    # Seconds between delinquency sweeps inside `serve`; 0 turns them off.
    sweep_interval_s: float = 3600.0
    # Loans per sweep transaction. 5,000: 1.24-1.35x a bare UPDATE of the same
    # loans against 1.45-1.51x at 1,000, and payments during a sweep no slower
    # (docs/benchmarks.md, round three); a batch holds its loans' row locks ~0.1 s.
    sweep_batch_size: int = 5000
    # A "payment due soon" reminder goes out this many days before a due date.
    reminder_days: int = 1
    # Seconds of silence after which a notification stream sends a heartbeat.
    stream_heartbeat_s: float = 15.0
    # RabbitMQ to relay every event to (amqp://user:password@host:5672/vhost); empty: none.
    amqp_url: str = ""
    # The durable topic exchange the relay publishes to.
    amqp_exchange: str = "loanbilling.events"
    # TLS: the server's certificate chain and key (PEM files). With a client CA,
    # clients must present a certificate it signed (mutual TLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # Serve plaintext on a non-loopback address (behind a TLS-terminating proxy or
    # a mesh). Without TLS files, plaintext is otherwise served on loopback only.
    plaintext: bool = False
    # Bearer tokens and their roles, JSON: {"tokens": [{"name", "role", "token" or
    # "sha256"}]}, in a file or in the variable itself. Neither: no authentication.
    auth_tokens_file: str = ""
    auth_tokens: str = ""
    # host:port for Prometheus metrics over HTTP; empty: not served.
    metrics_listen: str = ""
    # "text" for people, "json" (one object a line) for log collectors.
    log_format: str = "text"
    # Seconds a unary call may take when the client set no deadline.
    default_deadline_s: float = 30.0
    # HTTP/2 streams (calls, open notification streams included) per connection.
    max_concurrent_streams: int = 2048
    # Seconds after which the server asks a client connection to reconnect (HTTP/2
    # GOAWAY, +-10 % jitter), so that clients spread onto new replicas; 0: never.
    max_connection_age_s: float = 1800.0
    # Seconds calls (streams included) still get on a connection asked to reconnect.
    max_connection_age_grace_s: float = 30.0
    # Server processes sharing the listen port (SO_REUSEPORT), each with its own
    # event loop and pool: a pod's cores (loanbilling.workers).
    workers: int = 1
    # Bind the listen port with SO_REUSEPORT, sharing it with other processes that
    # do too; off, a port already taken fails the start. --workers sets it.
    reuse_port: bool = False

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
        if self.log_format not in {"text", "json"}:
            raise ValueError("log_format must be text or json")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        if self.auth_tokens and self.auth_tokens_file:
            raise ValueError("give auth_tokens or auth_tokens_file, not both")
        if self.default_deadline_s <= 0:
            raise ValueError("default_deadline_s must be more than 0")
        if self.max_concurrent_streams < 1:
            raise ValueError("max_concurrent_streams must be 1 or more")
        if self.max_connection_age_s < 0:
            raise ValueError("max_connection_age_s must be 0 (no limit) or more")
        if self.max_connection_age_grace_s < 0:
            raise ValueError("max_connection_age_grace_s must be 0 or more")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1 to {MAX_WORKERS}")

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
                values[field.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}{field.name.upper()} / --{field.name.replace('_', '-')}: "
                    f"{raw!r} is not a valid {kind.__name__}"
                ) from None
        return cls(**values)


def to_environ(settings: Settings) -> dict[str, str]:
    """Every setting as the LOANBILLING_* variable `Settings.load` reads back to it."""
    environ = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        environ[ENV_PREFIX + field.name.upper()] = text
    return environ


def _parse_bool(raw: str | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(raw)


# What each setting does, one line each: the flags' --help.
HELP: dict[str, str] = {
    "listen": "host:port to serve gRPC on (\"localhost\" binds 127.0.0.1 and ::1)",
    "database_url": "sqlite:///FILE (embedded, no setup) or postgresql://user@host/db",
    "time_zone": "IANA time zone whose calendar date is the business date",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "db_pool_size": "database connections for calls (and, on SQLite, worker threads)",
    "shutdown_grace_s": "seconds in-flight calls get to finish after SIGTERM/SIGINT",
    "health_interval_s": "seconds between the database checks behind the health service",
    "sweep_interval_s": "seconds between delinquency sweeps inside serve; 0 turns them off",
    "sweep_batch_size": "loans per sweep transaction",
    "reminder_days": "days before a due date that a 'payment due soon' reminder goes out (0-6)",
    "stream_heartbeat_s": "seconds of silence after which a notification stream sends a heartbeat",
    "amqp_url": "RabbitMQ to relay every event to (amqp://user:password@host:5672/vhost)",
    "amqp_exchange": "the durable topic exchange the relay publishes to",
    "tls_cert_file": "the server's TLS certificate chain (PEM)",
    "tls_key_file": "the server's TLS private key (PEM)",
    "tls_client_ca_file": "CA that client certificates must be signed by (mutual TLS)",
    "plaintext": "serve plaintext on a non-loopback address (behind a TLS proxy or a mesh)",
    "auth_tokens_file": 'JSON file of bearer tokens and roles: {"tokens": [...]}',
    "auth_tokens": "the same JSON given in the variable itself",
    "metrics_listen": "host:port for Prometheus metrics over HTTP; empty: not served",
    "log_format": "text (for people) or json (one object a line, for log collectors)",
    "default_deadline_s": "seconds a unary call may take when the client set no deadline",
    "max_concurrent_streams": "HTTP/2 streams (calls and open streams) per connection",
    "max_connection_age_s": "seconds before a client connection is asked to reconnect "
    "(spreads clients onto new replicas); 0: never",
    "max_connection_age_grace_s": "seconds the calls and streams of a connection asked to "
    "reconnect still get",
    "workers": "server processes sharing the listen port (SO_REUSEPORT), e.g. one per core; "
    "PostgreSQL only",
    "reuse_port": "share the listen port with other processes that do too (--workers sets it)",
}


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds --flag options for the named settings; unset flags fall back to the environment."""
    by_name = {f.name: f for f in fields(Settings)}
    for name in names:
        field = by_name[name]
        flag_help = f"{HELP[name]} (default: ${ENV_PREFIX}{name.upper()} or {field.default!r})"
        if isinstance(field.default, bool):
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="store_const",
                const=True,
                default=None,
                help=flag_help,
            )
            continue
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=flag_help)
