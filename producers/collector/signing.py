"""Webhook signing: the ``X-Leadstream-Signature`` HMAC that senders compute and the collector checks.

A sender signs ``"{timestamp}." + body`` with the shared secret (HMAC-SHA256) and sends
the epoch-seconds timestamp in ``X-Leadstream-Timestamp``; the collector refuses a
missing, malformed, stale (outside :data:`SIGNATURE_WINDOW_S`) or wrong signature.
Kept apart from the app so senders (the demo, benchmarks) need not import the server.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["SIGNATURE_WINDOW_S", "sign", "verify"]

SIGNATURE_WINDOW_S = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Leadstream-Signature`` value for ``body`` sent at ``timestamp`` (epoch s)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> str | None:
    """None when the signature is valid, else why not: missing, malformed, stale or wrong."""
    timestamp = headers.get("x-leadstream-timestamp")
    signature = headers.get("x-leadstream-signature")
    if not timestamp or not signature:
        return "missing"
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "malformed"
    if abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW_S:
        return "stale"
    expected = sign(secret, timestamp, body).encode()
    # Header values arrive latin-1 decoded, so encoding back is lossless; constant time.
    if not hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace")):
        return "wrong"
    return None
