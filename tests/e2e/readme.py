"""The README walkthrough as data: grpcurl commands and the outputs they must give.

Between `<!-- walkthrough:begin -->` and `<!-- walkthrough:end -->`, every
fenced `sh` block is one grpcurl command against `$ADDR`, and the next
fenced block is what it prints:

- ```json      stdout, compared as JSON, equal;
- ```json trimmed   stdout, compared as JSON: every field shown must be there
  with that value (lists whole), fields left out are not checked;
- ```text      stdout line by line; a block starting with `ERROR:` is
  grpcurl's error report instead, on stderr with a non-zero exit status;
- ```json stream trimmed   a server stream: the command bounds itself with
  `-max-time`, at which grpcurl stops with DeadlineExceeded (accepted, like a
  0 exit status); stdout is the messages, one JSON object after another,
  compared as a list (the same number of messages) each like `json trimmed`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- walkthrough:begin -->"
END = "<!-- walkthrough:end -->"
README_ADDRESS = "$ADDR"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
KINDS = {"json", "json trimmed", "text", "json stream trimmed"}


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

    @property
    def streams(self) -> bool:
        return self.kind.startswith("json stream")


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
        if kind not in KINDS:
            raise ValueError(f"README.md:{line}: output block kind {kind!r} is not checkable")
        step = Step(line, body.strip(), kind, expected)
        if step.streams and "-max-time" not in shlex.split(step.command.replace("\\\n", " ")):
            raise ValueError(f"README.md:{line}: a stream must end by itself: add -max-time")
        steps.append(step)
    return steps


def cli_example(command: str, text: str | None = None) -> tuple[list[str], str]:
    """The first example of `loanbilling COMMAND` after the walkthrough, run on the
    walkthrough's database: its arguments (after `loanbilling`, a comment
    dropped) and the ```text block it prints."""
    text = README.read_text() if text is None else text
    blocks = [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text, text.index(END))]
    for (info, body), (next_info, output) in pairwise(blocks):
        words = shlex.split(body.split("#", 1)[0]) if info == "sh" else []
        if words[:2] == ["loanbilling", command]:
            if next_info != "text":
                raise ValueError(
                    f"README.md: the {command} example's output is not a ```text block"
                )
            return words[1:], output
    raise ValueError(f"README.md: no `loanbilling {command}` example after the walkthrough")


def sweep_cli_example(text: str | None = None) -> tuple[list[str], dict]:
    """The `loanbilling sweep` example of "Events and notifications": its arguments
    and the JSON line it prints."""
    args, output = cli_example("sweep", text)
    return args, json.loads(output)


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


def json_values(text: str) -> list:
    """The JSON values of `text`, one after another (as grpcurl prints a stream)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _ended_by_max_time(returncode: int, stderr: str) -> bool:
    """grpcurl's -max-time ended the call: DeadlineExceeded, exit status 64 + 4."""
    return returncode == 68 and "Code: DeadlineExceeded" in stderr


def check_output(step: Step, returncode: int, stdout: str, stderr: str) -> None:
    where = f"README.md:{step.line} ({step.rpc})"
    if step.streams:
        assert returncode == 0 or _ended_by_max_time(returncode, stderr), (
            f"{where}: grpcurl exited {returncode}:\n{stderr}"
        )
        try:
            assert_contains(json_values(step.expected), json_values(stdout))
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}; grpcurl printed:\n{stdout}") from None
        return
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
