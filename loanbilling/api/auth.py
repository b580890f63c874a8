"""Bearer tokens and roles.

Roles nest: an admin may do what a collector may, a collector what a reader
may. Tokens are kept as SHA-256 digests and compared in constant time against
every entry, so neither the comparison nor which entry matched leaks timing;
tokens never reach a log.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path


class Role(enum.IntEnum):
    READER = 1  # reads and streams
    COLLECTOR = 2  # payments, and what a reader may
    ADMIN = 3  # customers, loans, the sweep, and everything else


@dataclass(frozen=True)
class Credential:
    name: str
    role: Role
    digest: bytes


class TokenTable:
    def __init__(self, credentials: list[Credential]) -> None:
        if not credentials:
            raise ValueError("the token table is empty: name at least one token")
        self.credentials = credentials

    @classmethod
    def parse(cls, text: str, source: str) -> TokenTable:
        """JSON: {"tokens": [{"name": "collections-api", "role": "collector",
        "token": "..."} or {..., "sha256": "<hex digest of the token>"}]}"""
        try:
            entries = json.loads(text)["tokens"]
            credentials = []
            for entry in entries:
                if "sha256" in entry:
                    digest = bytes.fromhex(entry["sha256"])
                else:
                    digest = hashlib.sha256(entry["token"].encode()).digest()
                if len(digest) != 32:
                    raise ValueError("a sha256 digest has 64 hex digits")
                credentials.append(Credential(entry["name"], Role[entry["role"].upper()], digest))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f'{source}: expected {{"tokens": [{{"name", "role" (admin, collector or '
                f'reader), "token" or "sha256"}}]}} ({error.__class__.__name__}: {error})'
            ) from None
        return cls(credentials)

    @classmethod
    def from_file(cls, path: str) -> TokenTable:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ValueError(f"cannot read the token file {path}: {error.strerror}") from None
        return cls.parse(text, path)

    def changes_from(self, old: TokenTable | None) -> str:
        """What replacing `old` by this table changes, by names and roles only: never a
        token or a digest (the table's reload logs it)."""
        before, after = _by_name(old.credentials if old else []), _by_name(self.credentials)
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        changed = []
        for name in sorted(before.keys() & after.keys()):
            what = []
            old_roles, new_roles = _roles(before[name]), _roles(after[name])
            if old_roles != new_roles:
                what.append(f"role {old_roles} -> {new_roles}")
            if {d for _, d in before[name]} != {d for _, d in after[name]}:
                what.append("new token")
            if what:
                changed.append(f"{name} ({', '.join(what)})")
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("added", added), ("removed", removed), ("changed", changed))
            if names
        ]
        unchanged = len(after) - len(added) - len(changed)
        if not parts:
            return f"no change ({unchanged} names)"
        return "; ".join(parts) + f"; {unchanged} unchanged"

    def authenticate(self, token: str) -> Credential | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for credential in self.credentials:  # no early exit: same time whatever matches
            if hmac.compare_digest(credential.digest, digest):
                found = credential
        return found


def _by_name(credentials: list[Credential]) -> dict[str, set[tuple[Role, bytes]]]:
    table: dict[str, set[tuple[Role, bytes]]] = {}
    for credential in credentials:
        table.setdefault(credential.name, set()).add((credential.role, credential.digest))
    return table


def _roles(entries: set[tuple[Role, bytes]]) -> str:
    return "/".join(sorted({role.name.lower() for role, _ in entries}))
