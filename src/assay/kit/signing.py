"""Expiring HMAC-signed tokens (upload URLs), and the server's signing key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any


class BadToken(ValueError):
    """Tampered, malformed or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, claims: dict[str, Any], ttl_s: int) -> str:
    """A token carrying `claims` until `ttl_s` seconds from now."""
    payload = _b64(json.dumps({**claims, "exp": int(time.time()) + ttl_s}).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(key: bytes, token: str) -> dict[str, Any]:
    """The claims of a valid, unexpired token; `BadToken` otherwise."""
    try:
        payload, mac = token.split(".", 1)
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        # Compared as text: base64 decoding ignores low bits and padding, so many spellings
        # decode to one MAC, and only the one this server writes is its signature.
        if not hmac.compare_digest(_b64(expected).encode(), mac.encode()):
            raise BadToken("bad signature")
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadToken("malformed token") from exc
    if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
        raise BadToken("expired token")
    return claims


def load_or_create_key(path: Path) -> bytes:
    """The server's signing key, made once and kept (owner-only) in the data dir."""
    if path.is_file():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
