"""The redaction vocabulary shared by the API (which redacts) and the admin CLI (which validates
tenant settings) — SPEC §9.

- `SENSITIVE_KEY`: keys whose values are always redacted.
- A tenant key pattern is regex source, optionally wrapped as `/.../flags`, matched
  case-insensitively.
- A tenant pointer is an RFC 6901 JSON pointer (`/a/b`, also `#/a/b`); `""`, `"/"`, `"#"` name the
  whole document.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[REDACTED]"
SENSITIVE_KEY: Final = re.compile(r"(secret|token|password|api[_-]?key|authorization)", re.I)


def compile_key_pattern(source: str) -> re.Pattern[str]:
    """Raises `re.error` when `source` is not a valid regular expression."""
    match = re.fullmatch(r"/(.*)/([a-z]*)", source, flags=re.S)
    return re.compile(match.group(1) if match else source, re.I)


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of a pointer; raises `ValueError` when it is not one."""
    if pointer.startswith("#"):
        pointer = pointer[1:]
    if pointer in ("", "/"):
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
