""".github/workflows/ci.yml, the hosted twin of .ci/run: PostgreSQL 15 and
RabbitMQ service containers where the suite looks for them, `make lint` and
`make test`, and actionlint (run by `make lint`) finds nothing in it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("PyYAML is missing (pip install -e '.[dev]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def _job() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    return job


def test_services_are_where_the_suite_looks_for_them():
    job = _job()
    services = job["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert "5432:5432" in services["postgres"]["ports"]
    assert "5672:5672" in services["rabbitmq"]["ports"]
    env = job["env"]
    assert env["CI"] == "true"  # the PostgreSQL and RabbitMQ tests fail, not skip
    for variable, module, port in (
        ("LOANBILLING_TEST_POSTGRES_URL", "databases.py", 5432),
        ("LOANBILLING_TEST_AMQP_URL", "rabbitmq.py", 5672),
    ):
        assert variable in (ROOT / "tests" / "support" / module).read_text()
        url = urlsplit(env[variable])
        assert (url.hostname, url.port) == ("127.0.0.1", port), variable


def test_it_runs_the_readme_test_command_and_the_linters():
    runs = [step.get("run", "") for step in _job()["steps"]]
    commands = [re.sub(r"^sudo .*? make ", "make ", run.strip()) for run in runs]
    assert "make lint" in commands and "make test" in commands
    assert "make test" in (ROOT / "README.md").read_text()
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert lint and "actionlint" in lint.group(1), "make lint does not run actionlint"


def test_actionlint_finds_nothing():
    if not ACTIONLINT.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{ACTIONLINT} is missing; CI installs the dev extras")
        pytest.skip(f"{ACTIONLINT} is missing (pip install -e '.[dev]')")
    done = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(WORKFLOW)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
