"""A per-client rate limit for the collector: a token bucket per client address.

Off by default (``LEADSTREAM_RATE_LIMIT_PER_SECOND`` unset). When on, each client
address gets a bucket of ``LEADSTREAM_RATE_LIMIT_BURST`` requests refilled at the
configured rate; a request that finds it empty is answered ``429`` with
``Retry-After`` and counted (``leadstream_rejected_total{reason="rate_limited"}``).
Addresses live only in this process's memory, in a bounded table (the least recently
seen are forgotten first); they are never stored, logged or produced. ``/healthz`` and
``/metrics`` are never limited, so a monitor is not locked out by the traffic it watches.
With ``--workers N`` every process keeps its own buckets: the limit is per process.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["EXEMPT_PATHS", "RateLimitMiddleware", "TokenBuckets"]

EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})
#: Client addresses remembered at once; beyond that the least recently seen go first.
MAX_CLIENTS = 100_000


class TokenBuckets:
    """Token buckets keyed by client; ``take`` answers 0 (allowed) or the seconds to wait."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    """Pure ASGI middleware: 429 before the app sees a request over its client's budget."""

    def __init__(self, app: Any, buckets: TokenBuckets, on_limited: Callable[[], None]) -> None:
        self.app = app
        self.buckets = buckets
        self.on_limited = on_limited

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        self.on_limited()
        body = b'{"error": "rate_limited", "detail": "too many requests from this client"}'
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait)).encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
