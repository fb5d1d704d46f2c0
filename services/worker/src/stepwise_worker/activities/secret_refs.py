"""`{"$secret": NAME}` references, resolved inside the action activity only (SPEC §9).

The workflow passes refs unresolved, with the positions where the published definition wrote them
(`secret_positions.py`), so a secret never enters Temporal history and a ref that arrives as data
is never resolved. Here the refs at those positions are replaced by the decrypted tenant secret
for the handler, and by `"[SECRET:REDACTED]"` in what the ledger records. Whatever the action
returns or raises is scrubbed (`Scrubber`) before it leaves the activity.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, quote_plus

import asyncpg
import msgspec
from stepwise_contract.expressions import is_secret_ref
from stepwise_contract.json_limits import MAX_JSON_DEPTH
from stepwise_contract.platform.secrets import SECRET_REDACTED, SecretKeyError, decrypt_secret

SELECT_SECRETS = """
SELECT name, value_encrypted FROM tenant_secrets WHERE tenant = $1 AND name = ANY($2::text[])
"""

# Any run of this many characters of a secret (any case) is scrubbed: a split or a substring of
# a secret that long still gives most of it away.
SCRUB_WINDOW: Final = 8
TOO_DEEP: Final = "[TRUNCATED: nested too deep]"
MAX_SEARCHED_WINDOWS: Final = 200

Path = tuple[str | int, ...]


class SecretUnavailable(LookupError):
    """A referenced secret is not set for the tenant, or cannot be decrypted."""


def declared_refs(value: Any, paths: Iterable[Sequence[str | int]]) -> dict[Path, str]:
    """The secret name at each declared position of `value` that still holds a ref."""
    refs: dict[Path, str] = {}
    for path in paths:
        node = value
        for segment in path:
            if isinstance(node, dict) and isinstance(segment, str):
                node = node.get(segment)
            elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
                node = node[segment]
            else:
                node = None
                break
        if is_secret_ref(node) and isinstance(node["$secret"], str):
            refs[tuple(path)] = node["$secret"]
    return refs


async def load_secrets(
    pool: asyncpg.Pool, tenant_id: str, names: Iterable[str], secret_key: str
) -> dict[str, str]:
    wanted = sorted(set(names))
    rows = await pool.fetch(SELECT_SECRETS, uuid.UUID(tenant_id), wanted)
    found = {r["name"]: bytes(r["value_encrypted"]) for r in rows}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SecretUnavailable(f"secret {missing[0]!r} is not set for this tenant")
    try:
        return {name: decrypt_secret(secret_key, token) for name, token in found.items()}
    except SecretKeyError as exc:
        raise SecretUnavailable(str(exc)) from None


def _replace(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _replace(value[head], rest, new)}
    if isinstance(value, list) and isinstance(head, int):
        copy = list(value)
        copy[head] = _replace(value[head], rest, new)
        return copy
    return value


def substitute(value: Any, refs: Mapping[Path, str], secrets: Mapping[str, str]) -> Any:
    """`value` with the ref at each declared position replaced by its clear value."""
    for path, name in refs.items():
        value = _replace(value, path, secrets[name])
    return value


def redact(value: Any, refs: Mapping[Path, str]) -> Any:
    """`value` with each declared ref replaced by `"[SECRET:REDACTED]"` (the ledger's copy)."""
    for path in refs:
        value = _replace(value, path, SECRET_REDACTED)
    return value


def _base64_cores(data: bytes) -> set[str]:
    """What base64 shows of `data` wherever it sits in a longer input: for each of the three
    alignments, the characters that depend on `data` alone."""
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        start = -(-8 * offset // 6)
        end = 8 * (offset + len(data)) // 6
        core = encoded[start:end]
        if len(core) >= SCRUB_WINDOW:
            cores.update((core, core.replace("+", "-").replace("/", "_")))
    return cores


def _folded(text: str) -> str:
    """Lower case with the same length as `text` (index i of one is index i of the other)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class Scrubber:
    """Replaces clear secrets in what an action returns or raises, and the forms an action can
    easily derive from them: any case, JSON-escaped, URL-encoded, hex, base64 (at any alignment),
    and any run of `SCRUB_WINDOW` characters of a secret (what a split or substring leaves).

    Not covered (documented): pieces shorter than the window, reversed or interleaved text,
    hashes, ciphers. Actions that transform secrets should not receive them.
    """

    def __init__(self, clear_values: Iterable[str]) -> None:
        needles: set[str] = set()
        windows: set[str] = set()
        for clear in {c for c in clear_values if c}:
            data = clear.encode()
            needles.update(
                (
                    clear,
                    msgspec.json.encode(clear).decode()[1:-1],
                    quote(clear, safe=""),
                    quote_plus(clear),
                    data.hex(),
                    *_base64_cores(data),
                )
            )
            folded = _folded(clear)
            last = len(folded) - SCRUB_WINDOW
            windows.update(folded[i : i + SCRUB_WINDOW] for i in range(last + 1))
        self._needles = sorted({_folded(n) for n in needles if n}, key=len, reverse=True)
        # few windows: one C-level `find` each is fastest; many (a long key): one pass over the
        # text looking each position up in the set
        few = len(windows) <= MAX_SEARCHED_WINDOWS
        self._searched = self._needles + sorted(windows) if few else self._needles
        self._scanned = set() if few else windows
        lengths = [len(n) for n in self._needles] + ([SCRUB_WINDOW] if windows else [])
        self._shortest = min(lengths, default=0)

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, text: str) -> str:
        if not self._needles or len(text) < self._shortest:
            return text
        folded = _folded(text)
        spans: list[tuple[int, int]] = []
        for needle in self._searched:
            at = folded.find(needle)
            while at >= 0:
                spans.append((at, at + len(needle)))
                at = folded.find(needle, at + 1)
        if self._scanned:
            windows = self._scanned
            spans.extend(
                (i, i + SCRUB_WINDOW)
                for i in range(len(folded) - SCRUB_WINDOW + 1)
                if folded[i : i + SCRUB_WINDOW] in windows
            )
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, stop in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        out: list[str] = []
        cursor = 0
        for start, stop in merged:
            out.extend((text[cursor:start], SECRET_REDACTED))
            cursor = stop
        out.append(text[cursor:])
        return "".join(out)

    def value(self, value: Any, depth: int = 0) -> Any:
        """`value` with every string (keys too) scrubbed; nesting past the JSON depth limit is
        cut (an output that deep is refused anyway)."""
        if not self._needles:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
            return TOO_DEEP
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        return value
