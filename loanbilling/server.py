"""Composition root: settings -> database -> services -> gRPC server."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from microfin.loanbilling.v1 import loan_service_pb2, loan_service_pb2_grpc
from sqlalchemy import Engine

from loanbilling.api.loan_servicer import LoanServicer
from loanbilling.api.malformed import add_tolerant
from loanbilling.clock import BusinessClock
from loanbilling.config import Settings
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine, ping
from loanbilling.storage.migrate import check_schema

log = logging.getLogger(__name__)

SERVICE_NAMES = [loan_service_pb2.DESCRIPTOR.services_by_name["LoanService"].full_name]
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

SERVER_OPTIONS = [
    # A second server on a taken port must fail, not share the port's traffic.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping idle connections so that proxies keep them open and dead peers are noticed.
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
    executor: ThreadPoolExecutor
    port: int
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("shutting down: refusing new calls, %.1fs for in-flight ones", grace)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.executor.shutdown(wait=True)
        self.engine.dispose()


async def start(
    settings: Settings, *, engine: Engine | None = None, clock: BusinessClock | None = None
) -> App:
    engine = engine or make_engine(settings.database_url, pool_size=settings.db_pool_size)
    check_schema(engine)
    billing = BillingService(engine, clock or BusinessClock(settings.time_zone))
    executor = ThreadPoolExecutor(max_workers=settings.db_pool_size, thread_name_prefix="db")

    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_tolerant(
        loan_service_pb2_grpc.add_LoanServiceServicer_to_server,
        LoanServicer(billing, executor),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:  # grpcio's way of saying the port is taken or invalid
        raise OSError(f"cannot listen on {settings.listen}: {error}") from None
    await server.start()
    app = App(settings, engine, server, health_servicer, executor, port)
    app._tasks.append(asyncio.create_task(_watch_database(app)))
    log.info("serving on %s (port %d)", settings.listen, port)
    return app


async def _watch_database(app: App) -> None:
    """Health reports NOT_SERVING while the database does not answer."""
    loop = asyncio.get_running_loop()
    pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
    serving = None
    try:
        while True:
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(pinger, ping, app.engine),
                    timeout=max(app.settings.health_interval_s, 2.0),
                )
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
                for name in ["", *SERVICE_NAMES]:
                    await app.health.set(name, status)
                serving = ok
            await asyncio.sleep(app.settings.health_interval_s)
    finally:
        pinger.shutdown(wait=False)


async def serve(settings: Settings) -> None:
    """Serves until SIGTERM or SIGINT, then drains in-flight calls."""
    app = await start(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await app.stop()
    log.info("stopped")
