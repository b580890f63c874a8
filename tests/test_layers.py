"""The layers hold: import-linter's contracts (pyproject.toml, run by `make lint`)
pass, and the domain imports nothing but the standard library and itself, which
a forbidden-list contract cannot say of every third-party package there is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_the_domain_imports_only_the_standard_library_and_itself():
    graph = grimp.build_graph("loanbilling", include_external_packages=True)
    outside = {
        (module, imported)
        for module in {"loanbilling.domain", *graph.find_descendants("loanbilling.domain")}
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("loanbilling.domain")
        and imported.split(".")[0] not in sys.stdlib_module_names
    }
    assert not outside, sorted(outside)


def test_the_layer_contracts_pass():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:]
