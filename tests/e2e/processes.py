"""The `loanbilling` console script and the grpcurl binary, run as real processes.

Both live next to the interpreter running the tests (the venv's bin/). Every
call has a timeout, and a started server is always stopped: SIGTERM, then
SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
LOANBILLING = BIN / "loanbilling"
GRPCURL = BIN / "grpcurl"

CLI_TIMEOUT_S = 60
GRPCURL_TIMEOUT_S = 30
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without LOANBILLING_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOANBILLING_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `loanbilling ARGS` to completion (killed after CLI_TIMEOUT_S)."""
    return subprocess.run(
        [str(LOANBILLING), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=env if env is not None else clean_env(),
        cwd=cwd,
    )


def migrate(database_url: str, cwd: Path | None = None) -> None:
    done = run_cli("migrate", "--database-url", database_url, cwd=cwd)
    assert done.returncode == 0, f"loanbilling migrate failed:\n{done.stderr}"


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the grpcurl binary; each call is bounded by -max-time and a process timeout."""
    return subprocess.run(
        [str(GRPCURL), "-max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=GRPCURL_TIMEOUT_S,
    )


class ServerProcess:
    """`loanbilling serve` on a free port of 127.0.0.1, its output in a log file.

    Use as a context manager: entering starts it and waits until the health
    service answers SERVING; leaving stops it whatever happened. `grpcurl_transport`:
    how that health check connects (plaintext; e.g. ("-cacert", CA) for TLS).
    """

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        grpcurl_transport: tuple[str, ...] = ("-plaintext",),
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.args = args
        self.grpcurl_transport = grpcurl_transport
        self.env = env if env is not None else clean_env()
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        command = [
            str(LOANBILLING),
            "serve",
            "--database-url",
            self.database_url,
            "--listen",
            self.address,
            "--health-interval-s",
            "0.5",
            "--shutdown-grace-s",
            "2",
            *self.args,
        ]
        # Appended to: a restarted server (same port) keeps its earlier output.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"loanbilling serve exited with {self.proc.returncode} before it was "
                    f"ready:\n{self.log()}"
                )
            check = subprocess.run(
                [
                    str(GRPCURL),
                    *self.grpcurl_transport,
                    "-connect-timeout",
                    "1",
                    "-max-time",
                    "2",
                    self.address,
                    "grpc.health.v1.Health/Check",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if check.returncode == 0 and '"SERVING"' in check.stdout:
                return self
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"loanbilling serve not SERVING on {self.address} after {timeout}s:\n"
                    f"{check.stdout}{check.stderr}\n--- server log:\n{self.log()}"
                )
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> int:
        """SIGKILL: a crash, nothing cleaned up. Returns the exit status (-9)."""
        self.proc.kill()
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> ServerProcess:
        """Stops the server if it runs, then starts it again on the same port."""
        self.stop()
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode

    def wait_for_log(self, text: str, *, after: int = 0, timeout: float = 10) -> str:
        """Waits until `text` appears in the log past character `after` (e.g. the
        log's length before a signal); returns the log."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log())[after:]:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{log[after:]}")
            time.sleep(0.05)
        return log

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> ServerProcess:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()
