"""Prometheus metrics, served over HTTP on a port of their own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_REQUESTS = Counter(
    "loanbilling_rpc_requests", "RPCs answered, by method and status code", ["method", "code"]
)
RPC_DURATION = Histogram(
    "loanbilling_rpc_duration_seconds",
    "Time to answer an RPC (streams: until they end)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PAYMENTS = Counter(
    "loanbilling_payments", "MakePayment outcomes: accepted, or refused by reason", ["outcome"]
)
SWEEPS = Counter("loanbilling_sweeps", "Delinquency sweeps completed")
SWEEP_DURATION = Histogram(
    "loanbilling_sweep_duration_seconds",
    "Time a delinquency sweep took",
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SWEEP_EVENTS = Counter("loanbilling_sweep_events", "Events written by sweeps")
SWEEP_LAST_SUCCESS = Gauge(
    "loanbilling_sweep_last_success_timestamp_seconds",
    "When a sweep last completed in this process (Unix time; 0: none yet)",
)
SWEEP_INTERVAL = Gauge(
    "loanbilling_sweep_interval_seconds", "Seconds between serve's own sweeps (0: it runs none)"
)
OPEN_STREAMS = Gauge("loanbilling_open_streams", "Notification streams open on this process")
OUTBOX_NEWEST = Gauge("loanbilling_outbox_newest_sequence", "Newest event sequence seen here")
OUTBOX_RELAY_LAG = Gauge(
    "loanbilling_outbox_relay_lag",
    "Newest event sequence minus the newest one the broker confirmed (relay leader only)",
)
OUTBOX_RELAY_ENABLED = Gauge(
    "loanbilling_outbox_relay_enabled", "1 when this process runs the AMQP relay (an AMQP URL)"
)
OUTBOX_RELAY_LEADING = Gauge(
    "loanbilling_outbox_relay_leading", "1 while this process is the replica relaying to the broker"
)
DB_POOL_CHECKED_OUT = Gauge("loanbilling_db_pool_checked_out", "Database connections in use")
DB_POOL_SIZE = Gauge("loanbilling_db_pool_size", "Database connections the pool may hold")
