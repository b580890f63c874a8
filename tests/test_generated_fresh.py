"""generated/ must be exactly what scripts/gen_proto.sh makes from proto/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HINT = "generated/ is stale: run `make proto` and commit the result"


def _files(top: Path) -> dict[str, bytes]:
    return {
        p.relative_to(top).as_posix(): p.read_bytes()
        for p in sorted(top.rglob("*"))
        if p.is_file() and "__pycache__" not in p.relative_to(top).parts
    }


def test_generated_matches_proto(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), sys.executable, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"gen_proto.sh failed:\n{proc.stdout}\n{proc.stderr}"

    fresh = _files(out / "microfin")
    committed = _files(ROOT / "generated" / "microfin")
    assert fresh, "gen_proto.sh produced no files"

    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    differ = sorted(k for k in fresh.keys() & committed.keys() if fresh[k] != committed[k])
    problems = [f"missing from generated/microfin: {name}" for name in missing]
    problems += [f"not produced from proto/ (extra): {name}" for name in extra]
    problems += [f"differs from a fresh generation: {name}" for name in differ]
    assert not problems, HINT + ":\n  " + "\n  ".join(problems)
