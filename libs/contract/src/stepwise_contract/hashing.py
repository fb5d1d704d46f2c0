"""Canonical JSON and the hashes derived from it (definition hash, idempotency hash).

Canonical = msgspec JSON with object keys sorted and no whitespace, so equal documents hash equal
whichever process (API at publish, worker at load) computes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec


def canonical_json(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def definition_hash(definition_json: Any) -> str:
    """`workflow_definition_versions.definition_hash`: sha256 hex of the canonical definition."""
    return sha256_hex(definition_json)
