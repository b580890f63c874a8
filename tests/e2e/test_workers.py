"""`loanbilling serve --workers N`: N server processes on one port, as real processes.

The kernel spreads new connections over the workers (SO_REUSEPORT), each
counted in its own metrics (worker i on the metrics port + i); SIGTERM to the
parent stops them all; a worker that dies takes the others down with it, so
that the orchestrator restarts the pod whole; and the starts that cannot work
are refused with the reason.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import loan_service_pb2_grpc

from loanbilling.config import Settings, to_environ
from loanbilling.workers import worker_settings
from tests.e2e.processes import ServerProcess, clean_env, free_port, run_cli
from tests.support.api import new_key

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

WORKERS = 2


@pytest.fixture
def database(postgres_databases):
    url = postgres_databases.create()
    yield url
    postgres_databases.release(url)


def _workers_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _answered(metrics_port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    return sum(
        int(float(count))
        for count in re.findall(
            r'^loanbilling_rpc_requests_total\{code="OK",method="CreateCustomer"\} (\S+)$',
            text.decode(),
            re.M,
        )
    )


def _wait_for_metrics(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _answered(port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_workers_share_the_port_and_stop_together(database, tmp_path):
    metrics = free_port()
    args = ("--workers", str(WORKERS), "--metrics-listen", f"127.0.0.1:{metrics}")
    with ServerProcess(database, tmp_path, *args) as server:
        workers = _workers_of(server.proc.pid)
        assert len(workers) == WORKERS
        # SERVING came from whichever worker was up first: wait for every one to
        # listen (a worker serves its metrics once its gRPC port is bound).
        for i in range(WORKERS):
            _wait_for_metrics(metrics + i)
        # A new connection per call: the kernel picks a worker for each.
        calls = 24
        for n in range(calls):
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(server.address, options=options) as channel:
                loan_service_pb2_grpc.LoanServiceStub(channel).CreateCustomer(
                    api.CreateCustomerRequest(
                        name=f"Siti {n}", email="siti@example.com", request_id=new_key("c")
                    ),
                    timeout=10,
                )
        answered = [_answered(metrics + i) for i in range(WORKERS)]
        assert sum(answered) == calls and all(answered), answered  # 2^-23 to fail by chance
        assert server.stop() == 0, server.log()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"worker {pid} left running"
    log = server.log()
    assert f"with {WORKERS} workers" in log
    assert log.count("loanbilling.server: stopped") == WORKERS, log


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_dead_worker_takes_the_others_down(database, tmp_path):
    with ServerProcess(database, tmp_path, "--workers", str(WORKERS)) as server:
        first, *others = _workers_of(server.proc.pid)
        os.kill(first, signal.SIGKILL)
        code = server.wait(timeout=30)
        assert code == 128 + signal.SIGKILL, server.log()
        assert "exited with status -9: stopping the others" in server.log()
        deadline = time.monotonic() + 10
        while not all(_is_zombie(p) for p in others) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_is_zombie(p) for p in others)


def test_starts_that_cannot_work_are_refused(database, tmp_path):
    env = clean_env()
    sqlite = run_cli("serve", "--workers", "2", "--listen", f"127.0.0.1:{free_port()}", env=env)
    assert sqlite.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in sqlite.stderr
    no_port = run_cli(
        "serve", "--workers", "2", "--database-url", database, "--listen", "127.0.0.1:0", env=env
    )
    assert no_port.returncode == 2
    assert "needs a fixed port in --listen" in no_port.stderr
    for bad in ("0", "65"):
        refused = run_cli("serve", "--workers", bad, env=env)
        assert refused.returncode == 2
        assert "workers must be 1 to 64" in refused.stderr
    with ServerProcess(database, tmp_path) as taken:
        again = run_cli(
            "serve",
            "--workers",
            "2",
            "--database-url",
            database,
            "--listen",
            taken.address,
            env=env,
        )
        assert again.returncode == 2
        assert f"cannot listen on {taken.address}: Address already in use" in again.stderr


def test_a_worker_reads_back_exactly_the_parent_settings():
    """The workers get their settings through the environment: every field, every
    type, comes back equal (with the worker's own metrics port and sweep)."""
    parent = Settings(
        listen="0.0.0.0:50051",
        database_url="postgresql://loanbilling:secret@db:5432/loanbilling",
        plaintext=True,
        shutdown_grace_s=12.5,
        metrics_listen="0.0.0.0:9090",
        sweep_interval_s=600.0,
        auth_tokens='{"tokens": [{"name": "ops", "role": "admin", "token": "t o k"}]}',
        workers=3,
    )
    for index in range(3):
        expected = worker_settings(parent, index)
        assert Settings.load(environ=to_environ(expected)) == expected
        assert expected.workers == 1 and expected.reuse_port
        assert expected.metrics_listen == f"0.0.0.0:{9090 + index}"
        assert expected.sweep_interval_s == (600.0 if index == 0 else 0.0)
    assert Settings.load(environ=to_environ(Settings())) == Settings()
