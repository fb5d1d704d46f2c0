"""What the NATS and Temporal connection settings share: their error, and file-path variables.

Kept apart from `settings.py` (which builds `CommonSettings` from them) so that the connection
modules do not import it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class ConnectionConfigError(ValueError):
    """A connection setting is malformed (`settings.CommonSettings` reports it as a settings
    error)."""


def env_file(environ: Mapping[str, str], name: str) -> str | None:
    """A variable naming a file (certificate, key, credentials): None when unset; checked at
    start-up, so a missing secret mount is a clear error rather than a reconnect loop."""
    path = environ.get(name, "").strip()
    if not path:
        return None
    if not Path(path).is_file():
        raise ConnectionConfigError(f"{name}={path!r}: no such file")
    return path
