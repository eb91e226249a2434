"""Webhook signatures: `Assay-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

`verify` is what a receiver runs; it accepts several `v1=` values (so a sender may sign with an
old and a new secret while rotating) and refuses timestamps outside the tolerance (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Assay-Signature"


def _digest(secret: str, body: bytes, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int) -> str:
    """The `Assay-Signature` header value for `body` sent at unix time `t`."""
    return f"t={t},v1={_digest(secret, body, t)}"


def verify(
    secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret` and its timestamp is within the tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, body, timestamp)
    # Compare against every candidate so timing reveals neither the match nor its position.
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(expected.encode(), candidate.encode())
    return ok
