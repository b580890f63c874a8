"""End-to-end fixtures: empty (unmigrated) databases of the test's own, and the
subprocess tools in tests/e2e/processes.py."""

from __future__ import annotations

import pytest

# Plain asserts in the helpers report their operands (diffs), like those in tests.
pytest.register_assert_rewrite("tests.e2e.processes", "tests.e2e.readme")

from tests.e2e.processes import GRPCURL, LOANBILLING  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _tools_installed():
    for tool in (LOANBILLING, GRPCURL):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: run `make test` (installs the dev extras)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    """A database with no schema yet, on each backend; `loanbilling migrate` makes it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/loanbilling-e2e.db"
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create(migrated=False)
    yield url
    databases.release(url)
