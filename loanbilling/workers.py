"""`serve --workers N`: N server processes on one port, so that a pod uses its cores.

One `serve` process runs one event loop and holds the GIL for its Python work:
about one core at most. Here a parent starts N ordinary `serve` processes
(`python -m loanbilling serve`, settings passed in the environment) that all
bind the listen port; gRPC sets SO_REUSEPORT, so the kernel spreads incoming
connections over them. They share nothing but the database, exactly like
replicas: streams, the relay's leader lock and the sweep already hold across
processes. Only worker 0 runs the periodic sweep (one sweep per pod, not N);
worker i serves metrics on the metrics port + i.

The parent serves nothing: it forwards SIGTERM, SIGINT and SIGHUP to the
workers and waits. When a worker exits on its own (a crash, a startup error),
the parent stops the others and exits with that worker's status, so that the
orchestrator restarts the pod whole rather than leaving it at N - 1.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace

from loanbilling.config import Settings, to_environ

log = logging.getLogger("loanbilling.workers")

STOP_TIMEOUT_MARGIN_S = 10.0


def check(settings: Settings) -> None:
    """What N workers need: a fixed port (all bind it) and a database they can share."""
    if settings.database_url.startswith("sqlite"):
        raise ValueError(
            "--workers above 1 needs PostgreSQL: SQLite is for one process only "
            "(give --database-url postgresql://...)"
        )
    host, _, port = settings.listen.rpartition(":")
    if port == "0":
        raise ValueError(
            f"--workers {settings.workers} needs a fixed port in --listen "
            f"({settings.listen!r}): every worker binds the same one"
        )
    _check_free(host, int(port), settings.listen)


def _check_free(host: str, port: int, listen: str) -> None:
    """The workers share the port among themselves (SO_REUSEPORT), which would also
    let them share it with another server that set it: first a plain bind, as a
    single `serve` does, so that a port already taken still fails the start."""
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {listen}: {error}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(address)
            except OSError as error:
                raise OSError(
                    f"cannot listen on {listen}: {error.strerror}; choose another address "
                    "with --listen or LOANBILLING_LISTEN"
                ) from None


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker `index`'s settings: one process, its own metrics port, the sweep on 0."""
    metrics = settings.metrics_listen
    if metrics:
        host, _, port = metrics.rpartition(":")
        metrics = f"{host}:{int(port) + index}" if int(port) else metrics
    return replace(
        settings,
        workers=1,
        reuse_port=True,
        metrics_listen=metrics,
        sweep_interval_s=settings.sweep_interval_s if index == 0 else 0.0,
    )


def serve_workers(settings: Settings) -> int:
    """Runs the workers until SIGTERM/SIGINT; their exit status, or the first failed one's."""
    check(settings)
    command = [sys.executable, "-m", "loanbilling", "serve"]
    children: list[subprocess.Popen] = []
    stopping = False

    def forward(signum: int, _frame) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            signum = signal.SIGTERM
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for index in range(settings.workers):
        environ = {**os.environ, **to_environ(worker_settings(settings, index))}
        children.append(subprocess.Popen(command, env=environ))
    if stopping:  # SIGTERM came while they started
        forward(signal.SIGTERM, None)
    log.info(
        "serving on %s with %d workers (pids %s)",
        settings.listen,
        len(children),
        ", ".join(str(c.pid) for c in children),
    )
    # The first worker to exit: on a stop, all of them; otherwise one that failed.
    first = None
    while first is None:  # only ours can exit, but be sure
        pid, status = os.wait()
        first = next((c for c in children if c.pid == pid), None)
    first.returncode = os.waitstatus_to_exitcode(status)
    if not stopping:
        log.error(
            "worker (pid %d) exited with status %d: stopping the others",
            pid,
            first.returncode,
        )
        forward(signal.SIGTERM, None)
    wait_s = settings.shutdown_grace_s + STOP_TIMEOUT_MARGIN_S
    codes = [first.returncode]
    for child in children:
        if child is first:
            continue
        try:
            codes.append(child.wait(timeout=wait_s))
        except subprocess.TimeoutExpired:
            log.error("worker (pid %d) did not stop within %.0fs: killed", child.pid, wait_s)
            child.kill()
            codes.append(child.wait())
    if not stopping:
        return _status(first.returncode) or 1
    return next((_status(code) for code in codes if code), 0)


def _status(code: int) -> int:
    """A worker's exit code as a shell reports it (128 + N when signal N ended it)."""
    return 128 - code if code < 0 else code
