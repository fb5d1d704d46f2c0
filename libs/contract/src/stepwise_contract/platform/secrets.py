"""Tenant secrets at rest: Fernet with a key derived from `STEPWISE_SECRET_KEY`.

The admin CLI encrypts, the worker decrypts inside an activity; nothing else sees clear values.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

SECRET_REDACTED = "[SECRET:REDACTED]"


class SecretKeyError(ValueError):
    """The stored value cannot be decrypted with the configured key."""


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise SecretKeyError("STEPWISE_SECRET_KEY is not set")
    digest = hashlib.sha256(secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(secret_key: str, value: str) -> bytes:
    return _fernet(secret_key).encrypt(value.encode())


def decrypt_secret(secret_key: str, token: bytes) -> str:
    try:
        return _fernet(secret_key).decrypt(token).decode()
    except InvalidToken:
        raise SecretKeyError("secret cannot be decrypted with STEPWISE_SECRET_KEY") from None
