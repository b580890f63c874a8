"""Composition root: settings -> database -> services -> gRPC server and background tasks."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from microfin.loanbilling.v1 import (
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from prometheus_client import start_http_server
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from loanbilling.api import metrics
from loanbilling.api.analytics_servicer import AnalyticsServicer
from loanbilling.api.auth import TokenTable
from loanbilling.api.edge import Edge
from loanbilling.api.ledger_servicer import LedgerServicer
from loanbilling.api.loan_servicer import LoanServicer
from loanbilling.api.malformed import add_tolerant
from loanbilling.api.notification_servicer import NotificationServicer
from loanbilling.api.reflection import DocumentedPool
from loanbilling.api.runners import on_threads
from loanbilling.api.tls import TlsFiles
from loanbilling.clock import BusinessClock
from loanbilling.config import ENV_PREFIX, Settings
from loanbilling.events.hub import EventHub
from loanbilling.events.listener import listen
from loanbilling.events.relay import AmqpRelay
from loanbilling.events.sequencer import run_sequencer
from loanbilling.services.analytics import AnalyticsService
from loanbilling.services.billing import BillingService
from loanbilling.services.ledger import LedgerService
from loanbilling.services.sweep import SweepService
from loanbilling.storage.database import (
    is_postgresql,
    make_engine,
    make_loop_engine,
    ping,
    run_on_loop,
)
from loanbilling.storage.migrate import check_schema
from loanbilling.storage.numbering import Numbered
from loanbilling.storage.outbox import Outbox
from loanbilling.storage.unit_of_work import sql_storage

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    loan_service_pb2.DESCRIPTOR.services_by_name["LoanService"].full_name,
    notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
    ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name,
]
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
LIVENESS = "liveness"
# Worker threads (and their pool's connections) beside calls run on the loop: bulk
# work and the streams' catch-up reads only.
BULK_THREADS = 4

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping idle connections so that proxies keep them open and dead peers are noticed.
    # (Idle notification streams also send heartbeat messages.)
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


@dataclass
class App:
    """A running server with what it owns; `stop` releases all of it."""

    settings: Settings
    engine: Engine
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    hub: EventHub
    executor: ThreadPoolExecutor
    port: int
    metrics_server: object | None = None
    # The background threads' own connections and the hub's thread (see `start`).
    background_engine: Engine | None = None
    hub_worker: ThreadPoolExecutor | None = None
    # PostgreSQL with psycopg 3: the pool of the calls run on the event loop.
    loop_engine: AsyncEngine | None = None
    # What SIGHUP reloads (`reload`): the edge's token table and the TLS files.
    edge: Edge | None = None
    tls: TlsFiles | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def reload(self) -> None:
        """SIGHUP: reads the token file and the TLS files again. New tokens apply to
        the next calls, new certificates to the next connections; files that do not
        pass their checks change nothing (an error is logged). Calls in flight go on."""
        what = [
            *(["the token file"] if self.settings.auth_tokens_file else []),
            *(["the TLS files"] if self.tls is not None else []),
        ]
        log.info("SIGHUP: reloading %s", " and ".join(what) or "nothing (no token or TLS file)")
        self._reload_tokens()
        if self.tls is not None:
            self.tls.reload()

    def _reload_tokens(self) -> None:
        path = self.settings.auth_tokens_file
        if not path or self.edge is None:
            if self.settings.auth_tokens:
                log.info(
                    "tokens not reloaded: %sAUTH_TOKENS is read at start only (restart, or "
                    "use %sAUTH_TOKENS_FILE)",
                    ENV_PREFIX,
                    ENV_PREFIX,
                )
            return
        try:
            table = TokenTable.from_file(path)
        except Exception as error:  # noqa: BLE001 - a bad file must not stop the server
            log.error("tokens not reloaded, the previous ones stay in force: %s", error)
            return
        # Names and roles only: never a token.
        changes = table.changes_from(self.edge.tokens)
        self.edge.replace_tokens(table)
        log.info("tokens reloaded from %s: %s", path, changes)

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("shutting down: refusing new calls, %.1fs for in-flight ones", grace)
        await self.health.enter_graceful_shutdown()
        await self.hub.close()  # streams end now; unary calls get the grace period
        await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Waiting for worker threads must not block the loop that is shutting down.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.executor.shutdown)
        if self.hub_worker is not None:
            await loop.run_in_executor(None, self.hub_worker.shutdown)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self.background_engine is not None and self.background_engine is not self.engine:
            self.background_engine.dispose()
        if self.loop_engine is not None:
            await self.loop_engine.dispose()
        self.engine.dispose()


async def start(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: BusinessClock | None = None,
    one_statement: bool | None = None,
) -> App:
    """Composes and starts the server. `one_statement`: how payments and new loans
    are written (default: in one statement on PostgreSQL, portably elsewhere)."""
    # Calls wait for PostgreSQL (psycopg 3) on the event loop, in a pool of
    # `db_pool_size` connections; the worker threads then keep only bulk work
    # (sweeps, verifying the books) and the streams' catch-up reads. Elsewhere
    # (SQLite, psycopg2) every call runs on a worker thread.
    url = settings.database_url
    if engine is not None:  # given by the caller (the tests): the calls' pool follows it
        url = engine.url.render_as_string(hide_password=False)
    loop_engine = make_loop_engine(url, pool_size=settings.db_pool_size)
    threads = settings.db_pool_size if loop_engine is None else BULK_THREADS
    engine = engine or make_engine(url, pool_size=threads)
    check_schema(engine)
    storage = sql_storage(engine, one_statement=one_statement)
    clock = clock or BusinessClock(settings.time_zone)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
    run_bulk = on_threads(executor)
    if loop_engine is None:
        call_engine, call_storage, run_call = engine, storage, run_bulk
    else:
        call_engine = loop_engine.sync_engine
        call_storage = sql_storage(call_engine, one_statement=one_statement)
        run_call = run_on_loop
    # The worker threads hold up to all of their pool's connections. The
    # sequencer, the hub, the health check and the relay each have a thread and a
    # connection of their own, so that numbering and delivering events (and
    # answering the probes) never queue behind request work.
    background = _background_engine(engine, threads=4 if settings.amqp_url else 3)
    hub_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub")

    # A commit that wrote events wakes the sequencer; numbered events wake the hub
    # and the relay, here and (PostgreSQL NOTIFY) on every replica.
    outbox, background_outbox = Outbox(engine), Outbox(background)
    hub = EventHub(outbox, executor, follower=hub_worker, follower_outbox=background_outbox)
    relay = (
        AmqpRelay(background_outbox, settings.amqp_url, exchange=settings.amqp_exchange)
        if settings.amqp_url
        else None
    )
    sequencer_wake = asyncio.Event()
    origin = secrets.token_hex(8)  # names this server's numberings in NOTIFY

    def numbered(done: Numbered) -> None:
        # On the loop, after the sequencer's commit: its events go straight to the
        # streams (the listener skips this server's own NOTIFYs).
        if done.events is not None:
            hub.offer(done.events)
        else:
            hub.wake(done.newest)
        if relay is not None:
            relay.wake()

    def notified(up_to: int | None) -> None:
        hub.wake(up_to)
        if relay is not None:
            relay.wake()

    def events_written() -> None:
        loop.call_soon_threadsafe(sequencer_wake.set)

    billing = BillingService(call_storage, clock, events_written)
    sweeps = SweepService(
        storage,
        clock,
        batch_size=settings.sweep_batch_size,
        reminder_days=settings.reminder_days,
        events_written=events_written,
        on_report=_count_sweep,
    )

    edge = Edge(_token_table(settings), default_deadline_s=settings.default_deadline_s)
    tls = (
        TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        if settings.tls_cert_file
        else None
    )
    server = grpc.aio.server(options=_server_options(settings))
    add_tolerant(
        loan_service_pb2_grpc.add_LoanServiceServicer_to_server,
        LoanServicer(billing, sweeps, run_call, edge, run_bulk=run_bulk),
        server,
    )
    add_tolerant(
        notification_service_pb2_grpc.add_NotificationServiceServicer_to_server,
        NotificationServicer(hub, settings.stream_heartbeat_s, edge),
        server,
    )
    add_tolerant(
        analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server,
        AnalyticsServicer(AnalyticsService(call_storage, clock), run_call, edge),
        server,
    )
    add_tolerant(
        ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server,
        LedgerServicer(
            LedgerService(call_storage, clock),
            run_call,
            edge,
            books=LedgerService(storage, clock),
            run_bulk=run_bulk,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
        pool=DocumentedPool(),
    )
    port = _listen(server, settings, tls)
    # "liveness" answers SERVING while the process runs, whatever the database
    # does: a liveness probe must not restart every replica during an outage.
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    # Not serving until the database answered once (grpc starts '' at SERVING).
    for name in [*SERVICE_NAMES, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    metrics_server = _serve_metrics(settings, call_engine, hub, relay)
    app = App(
        settings,
        engine,
        server,
        health_servicer,
        hub,
        executor,
        port,
        metrics_server,
        background_engine=background,
        hub_worker=hub_worker,
        edge=edge,
        tls=tls,
        loop_engine=loop_engine,
    )
    app._tasks += [
        asyncio.create_task(_watch_database(app), name="health"),
        asyncio.create_task(hub.run(), name="hub"),
        asyncio.create_task(
            run_sequencer(background_outbox, sequencer_wake, numbered, origin=origin),
            name="sequencer",
        ),
    ]
    if outbox.notifies:
        app._tasks.append(asyncio.create_task(listen(outbox, notified, skip_origin=origin)))
    if relay is not None:
        app._tasks.append(asyncio.create_task(relay.run(), name="amqp-relay"))
    if settings.sweep_interval_s > 0:
        app._tasks.append(asyncio.create_task(_sweep_periodically(sweeps, executor, settings)))
    log.info("serving on %s (port %d)", settings.listen, port)
    return app


def _background_engine(engine: Engine, *, threads: int) -> Engine:
    """PostgreSQL: a pool of `threads` connections beside the calls' and the worker
    threads' pools. SQLite's pool is not bounded (it overflows), so it is shared."""
    if not is_postgresql(engine):
        return engine
    return make_engine(engine.url.render_as_string(hide_password=False), pool_size=threads)


def _server_options(settings: Settings) -> list[tuple[str, int]]:
    options = [
        *SERVER_OPTIONS,
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        # A second server on a taken port must fail, not share the port's traffic;
        # only the workers of `serve --workers` share theirs (loanbilling.workers).
        ("grpc.so_reuseport", int(settings.reuse_port)),
    ]
    if settings.max_connection_age_s > 0:
        # After about this age (gRPC adds +-10 % jitter) a connection gets GOAWAY: the
        # client opens a new one, which its balancer may send to a newer replica. Its
        # calls, streams included, get the grace period, then the connection closes
        # (open streams end with UNAVAILABLE and resume elsewhere).
        options += [
            ("grpc.max_connection_age_ms", round(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", round(settings.max_connection_age_grace_s * 1000)),
        ]
    return options


def _token_table(settings: Settings) -> TokenTable | None:
    if settings.auth_tokens_file:
        return TokenTable.from_file(settings.auth_tokens_file)
    if settings.auth_tokens:
        return TokenTable.parse(settings.auth_tokens, "LOANBILLING_AUTH_TOKENS")
    return None


LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _listen(server: grpc.aio.Server, settings: Settings, tls: TlsFiles | None) -> int:
    """TLS when certificates are given; plaintext on loopback, or elsewhere only when
    asked for with `plaintext`."""
    host = settings.listen.rsplit(":", 1)[0]
    try:
        if tls is not None:
            return server.add_secure_port(settings.listen, tls.credentials)
        if not settings.plaintext and host not in LOOPBACK:
            raise OSError(
                f"refusing to serve plaintext on {settings.listen}: give --tls-cert-file and "
                "--tls-key-file (and --tls-client-ca-file for mutual TLS), or --plaintext "
                "behind a TLS-terminating proxy or mesh"
            )
        return server.add_insecure_port(settings.listen)
    except RuntimeError as error:  # grpcio's way of saying the port is taken or invalid
        raise OSError(
            f"cannot listen on {settings.listen}: {error}; choose another address with "
            f"--listen or {ENV_PREFIX}LISTEN (e.g. --listen 127.0.0.1:50161)"
        ) from None


def _serve_metrics(settings: Settings, engine: Engine, hub: EventHub, relay) -> object | None:
    """Prometheus metrics over HTTP on their own port; gauges read live values."""
    metrics.OPEN_STREAMS.set_function(lambda: hub.subscribers)
    metrics.OUTBOX_NEWEST.set_function(lambda: hub.last)
    metrics.SWEEP_INTERVAL.set(settings.sweep_interval_s)
    if relay is not None:
        metrics.OUTBOX_RELAY_LAG.set_function(
            lambda: max(hub.last - relay.last_confirmed, 0) if relay.leading else 0
        )
        metrics.OUTBOX_RELAY_ENABLED.set(1)
        metrics.OUTBOX_RELAY_LEADING.set_function(lambda: int(relay.leading))
    pool = engine.pool
    if hasattr(pool, "checkedout"):
        metrics.DB_POOL_CHECKED_OUT.set_function(pool.checkedout)
        metrics.DB_POOL_SIZE.set_function(pool.size)
    if not settings.metrics_listen:
        return None
    host, _, port = settings.metrics_listen.rpartition(":")
    try:
        http_server, _thread = start_http_server(int(port), addr=host or "0.0.0.0")
    except (OSError, ValueError) as error:
        raise OSError(f"cannot serve metrics on {settings.metrics_listen}: {error}") from None
    log.info("metrics on http://%s/metrics", settings.metrics_listen)
    return http_server


def _count_sweep(report, seconds: float) -> None:
    metrics.SWEEPS.inc()
    metrics.SWEEP_DURATION.observe(seconds)
    metrics.SWEEP_EVENTS.inc(report.events_written)
    metrics.SWEEP_LAST_SUCCESS.set_to_current_time()


async def _sweep_periodically(
    sweeps: SweepService, executor: ThreadPoolExecutor, settings: Settings
) -> None:
    """Sweeps at the business date every interval. Replicas may overlap: the sweep
    is idempotent, so the only cost is the repeated work."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(executor, sweeps.run)
        except Exception as error:  # noqa: BLE001 - try again next interval
            log.warning("periodic sweep failed: %s", error)
        await asyncio.sleep(settings.sweep_interval_s)


async def _watch_database(app: App) -> None:
    """Health reports NOT_SERVING while the database does not answer."""
    loop = asyncio.get_running_loop()
    pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
    serving = None
    try:
        while True:
            try:
                async with asyncio.timeout(max(app.settings.health_interval_s, 2.0)):
                    await loop.run_in_executor(pinger, ping, app.background_engine or app.engine)
                ok = True
            except Exception as error:  # noqa: BLE001 - any failure means not serving
                ok = False
                if serving is not False:
                    log.warning("database unreachable: %s", error)
            if ok != serving:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if ok
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                # The overall status last: once it says SERVING, every service does.
                for name in [*SERVICE_NAMES, ""]:
                    await app.health.set(name, status)
                serving = ok
            await asyncio.sleep(app.settings.health_interval_s)
    finally:
        pinger.shutdown(wait=False)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop a server runs on: uvloop's, whose callbacks, futures and socket
    waits are C. A payment waits on it several times (gRPC's and each database
    round trip's): 15-30 % more payments per second than on asyncio's own loop
    at the same CPU (docs/benchmarks.md, "Performance, round six")."""
    return uvloop.new_event_loop()


async def serve(settings: Settings) -> None:
    """Serves until SIGTERM or SIGINT, then drains in-flight calls. SIGHUP reloads
    the token file and the TLS files (`App.reload`)."""
    app = await start(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    await stopping.wait()
    await app.stop()
    log.info("stopped")
