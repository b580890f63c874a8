"""The README walkthrough as data: grpcurl commands and the outputs they must give.

Between `<!-- walkthrough:begin -->` and `<!-- walkthrough:end -->`, every
fenced `sh` block is one grpcurl command against 127.0.0.1:50051, and the next
fenced block is what it prints:

- ```json      stdout, compared as JSON, equal;
- ```json trimmed   stdout, compared as JSON: every field shown must be there
  with that value (lists whole), fields left out are not checked;
- ```text      stdout line by line; a block starting with `ERROR:` is
  grpcurl's error report instead, on stderr with a non-zero exit status.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- walkthrough:begin -->"
END = "<!-- walkthrough:end -->"
README_ADDRESS = "127.0.0.1:50051"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    line: int  # of the command block in README.md
    command: str
    kind: str  # json, json trimmed, text
    expected: str

    def argv(self, grpcurl: str, address: str) -> list[str]:
        words = shlex.split(self.command.replace("\\\n", " "))
        if words[0] != "grpcurl" or README_ADDRESS not in words:
            raise ValueError(f"README.md:{self.line}: not a grpcurl call to {README_ADDRESS}")
        return [grpcurl, *(address if w == README_ADDRESS else w for w in words[1:])]

    @property
    def rpc(self) -> str:
        return self.command.split()[-1]


def walkthrough_steps(text: str | None = None) -> list[Step]:
    text = README.read_text() if text is None else text
    start, end = text.index(BEGIN), text.index(END)
    blocks = [
        (text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
        for m in FENCE.finditer(text, start, end)
    ]
    steps = []
    blocks_iter = iter(blocks)
    for line, info, body in blocks_iter:
        if info != "sh":
            raise ValueError(f"README.md:{line}: expected a ```sh command block, got {info!r}")
        try:
            _, kind, expected = next(blocks_iter)
        except StopIteration:
            raise ValueError(f"README.md:{line}: command without an output block") from None
        if kind not in {"json", "json trimmed", "text"}:
            raise ValueError(f"README.md:{line}: output block kind {kind!r} is not checkable")
        steps.append(Step(line, body.strip(), kind, expected))
    return steps


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def assert_contains(expected, actual, path: str = "$") -> None:
    """Every field of `expected` is in `actual` with the same value; lists compare whole."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing"
            assert_contains(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{path}: expected {expected!r}, got {actual!r}"
        )
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            assert_contains(want, got, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"


def check_output(step: Step, returncode: int, stdout: str, stderr: str) -> None:
    where = f"README.md:{step.line} ({step.rpc})"
    if step.kind == "text" and step.expected.startswith("ERROR:"):
        assert returncode != 0, f"{where}: expected an error, got:\n{stdout}"
        assert _lines(stderr) == _lines(step.expected), f"{where}: grpcurl said:\n{stderr}"
        return
    assert returncode == 0, f"{where}: grpcurl exited {returncode}:\n{stderr}"
    if step.kind == "text":
        assert _lines(stdout) == _lines(step.expected), f"{where}: grpcurl printed:\n{stdout}"
        return
    expected, actual = json.loads(step.expected), json.loads(stdout)
    if step.kind == "json":
        assert actual == expected, f"{where}: grpcurl printed:\n{stdout}"
    else:
        try:
            assert_contains(expected, actual)
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}; grpcurl printed:\n{stdout}") from None
