"""API key format and hashing (SPEC §7): keys are shown once, only their sha256 is stored.

Shared by the admin CLI (which creates keys) and the API (which authenticates them).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

KEY_PREFIX: Final = "sw_"


def generate_api_key() -> str:
    """A new key: `sw_` + 43 url-safe characters (256 bits of randomness)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """The value stored in `api_keys.key_hash`: sha256 hex of the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()
