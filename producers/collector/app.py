"""The tracking collector: a starlette ASGI app served by uvicorn (``leadstream collector``).

Endpoints (documented with curl examples in docs/capture.md; handlers in
``producers.collector.endpoints``):

- ``GET /p.gif``            pixel; always a 1x1 transparent GIF, never cached
- ``POST /collect``         JSON beacon with one event or a batch
- ``POST /identify``        anonymous id -> contact (email or contact id, traits)
- ``POST /webhooks/deals``  deal changes, HMAC-SHA256 signed (``producers.collector.signing``)
- ``POST /webhooks/contacts`` contact changes, HMAC-SHA256 signed
- ``POST /erasures``        erasure requests, signed the same way (``producers.collector.erasures``)
- ``GET /js/leadstream.js`` the tracking snippet
- ``GET /healthz``, ``GET /metrics`` (Prometheus)

This module wires the routes, CORS and the lifespan that owns the Kafka producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from ground.settings import Settings
from producers.collector.endpoints import Endpoints
from producers.collector.erasures import erasure_handler
from producers.collector.http import cors_middleware, guard
from producers.collector.rate_limit import RateLimitMiddleware, TokenBuckets
from producers.kafka import EventProducer
from producers.metrics import CaptureMetrics

__all__ = ["COLLECTOR_LINGER_MS", "create_app"]

log = logging.getLogger(__name__)

# No HTTP answer waits for the broker, so a longer linger costs no request latency and
# buys bigger batches: fewer produce requests for librdkafka and the broker to handle.
COLLECTOR_LINGER_MS = 20


def create_app(
    settings: Settings,
    *,
    producer: EventProducer | None = None,
    metrics: CaptureMetrics | None = None,
) -> Starlette:
    """Build the collector app; it owns (creates and flushes) a producer unless given one."""
    metrics = metrics or (producer.metrics if producer is not None and producer.metrics else CaptureMetrics())
    endpoints = Endpoints(settings, metrics, producer)
    state = endpoints.state

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owns = state["producer"] is None
        poller: asyncio.Task[None] | None = None
        if owns:
            owned = EventProducer(settings, metrics=metrics, poll_thread=False, **{"linger.ms": COLLECTOR_LINGER_MS})
            state["producer"] = owned
            poller = asyncio.get_running_loop().create_task(_serve_deliveries(owned))
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            events = endpoints.events()
            if owns:
                started = time.monotonic()
                left = events.close()
                log.info("collector producer flushed in %.2fs (%d undelivered)", time.monotonic() - started, left)
            else:
                events.flush()

    routes = [
        Route("/p.gif", guard(endpoints.pixel), methods=["GET"]),
        Route("/collect", guard(endpoints.collect), methods=["POST"]),
        Route("/identify", guard(endpoints.identify), methods=["POST"]),
        Route("/webhooks/deals", guard(endpoints.webhook("deal", "deals")), methods=["POST"]),
        Route("/webhooks/contacts", guard(endpoints.webhook("contact", "contacts")), methods=["POST"]),
        Route("/erasures", guard(erasure_handler(settings, endpoints)), methods=["POST"]),
        Route("/js/leadstream.js", endpoints.snippet_js, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/metrics", endpoints.metrics_endpoint, methods=["GET"]),
    ]
    middleware = [cors_middleware(settings.cors_origins)]
    if settings.rate_limit_per_second is not None:
        buckets = TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
        middleware.insert(0, Middleware(RateLimitMiddleware, buckets=buckets,
                                        on_limited=metrics.rejected.labels("rate_limited").inc))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.events = state
    return app


async def _serve_deliveries(producer: EventProducer, interval: float = 0.02) -> None:
    """Serve delivery callbacks on the event loop (non-blocking poll), every ``interval`` s."""
    while True:
        producer.poll(0)
        await asyncio.sleep(interval)
