"""The tracking collector: a starlette ASGI app served by uvicorn (``leadstream collector``).

Endpoints (documented with curl examples in docs/capture.md):

- ``GET /p.gif``            pixel; always a 1x1 transparent GIF, never cached
- ``POST /collect``         JSON beacon with one event or a batch
- ``POST /identify``        anonymous id -> contact (email or contact id, traits)
- ``POST /webhooks/deals``  deal changes, HMAC-SHA256 signed
- ``POST /webhooks/contacts`` contact changes, HMAC-SHA256 signed
- ``GET /js/leadstream.js`` the tracking snippet
- ``GET /healthz``, ``GET /metrics`` (Prometheus)

Every accepted event is produced (non-blocking) to its raw topic; every rejected
input answers 4xx and is published to the dead-letter topic with its reason, except
webhook calls that fail authentication (401, counted, nothing produced: an
unauthenticated caller must not be able to write anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ground.errors import BrokerError, SchemaError
from ground.settings import Settings
from ground.vocabulary import now_ms
from producers.collector.rate_limit import RateLimitMiddleware, TokenBuckets
from producers.events import (
    Rejected,
    contact_change_record,
    deal_change_record,
    identify_record,
    pixel_fields,
    touch_record,
)
from producers.kafka import EventProducer
from producers.metrics import CaptureMetrics
from producers.publish import DeadLetterPublisher

__all__ = ["ANON_COOKIE", "PIXEL_GIF", "SIGNATURE_WINDOW_S", "create_app", "sign"]

log = logging.getLogger(__name__)

#: The smallest transparent 1x1 GIF (43 bytes).
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
ANON_COOKIE = "ls_aid"
COOKIE_MAX_AGE_S = 2 * 365 * 86_400
SIGNATURE_WINDOW_S = 300
# No HTTP answer waits for the broker, so a longer linger costs no request latency and
# buys bigger batches: fewer produce requests for librdkafka and the broker to handle.
COLLECTOR_LINGER_MS = 20
MAX_BATCH = 1000
SNIPPET_PATH = Path(__file__).resolve().parent.parent / "js" / "leadstream.js"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Leadstream-Signature`` value for ``body`` sent at ``timestamp`` (epoch s)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


#: Bodies above this size are parsed and validated in a worker thread: the work is linear,
#: but at the body limit it takes tens of milliseconds that /healthz and every other
#: request would otherwise wait for. Small bodies stay on the loop (a thread hop costs
#: more than their work).
OFF_LOOP_BYTES = 32 * 1024


async def _off_loop_if_large(size: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0


class _TooLarge(Exception):
    def __init__(self, head: bytes, declared: int | None) -> None:
        super().__init__("body too large")
        self.head = head
        self.declared = declared


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (without reading it all) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(b"", int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            raise _TooLarge(b"".join(chunks)[:limit], None)
    return b"".join(chunks)


def _events_of(body: Any) -> tuple[list[Any], dict[str, Any]]:
    """Events of a JSON body and the batch-level defaults.

    Accepted shapes: one event object; a list of events; ``{"events": [...], ...}``
    whose other top-level fields (``anonymous_id``, ``sent_at``, ...) apply to every
    event that lacks them.
    """
    if isinstance(body, list):
        return body, {}
    if isinstance(body, dict) and "events" in body:
        events = body["events"]
        if not isinstance(events, list):
            raise Rejected("invalid_body", "events must be a list")
        return events, {k: v for k, v in body.items() if k != "events"}
    if isinstance(body, dict):
        return [body], {}
    raise Rejected("invalid_body", "the body must be a JSON object or a list of objects")


def create_app(
    settings: Settings,
    *,
    producer: EventProducer | None = None,
    metrics: CaptureMetrics | None = None,
    baseline_route: bool = False,
) -> Starlette:
    """Build the collector app; it owns (creates and flushes) a producer unless given one.

    ``baseline_route`` adds ``GET /baseline.gif`` answering the constant GIF with no
    work at all: the benchmark's reference point, not for production.
    """
    metrics = metrics or (producer.metrics if producer is not None and producer.metrics else CaptureMetrics())
    state: dict[str, Any] = {"producer": producer}
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    limit = settings.max_body_bytes
    site_domains = settings.site_domain_list
    drop_bots = settings.bot_policy == "drop"
    snippet = SNIPPET_PATH.read_bytes()

    def events() -> EventProducer:
        p = state["producer"]
        assert p is not None, "collector used outside its lifespan"
        return p

    def dead_letter(stage: str, code: str, detail: str, origin: str, payload: bytes) -> None:
        DeadLetterPublisher(events()).publish(stage=stage, reason=code, detail=detail, origin=origin,
                                              payload=payload)

    counters: dict[tuple[str, int], Any] = {}

    def count(endpoint: str, status: int) -> None:
        counter = counters.get((endpoint, status))
        if counter is None:  # label lookups take a lock: resolve each child once
            counter = counters[(endpoint, status)] = metrics.requests.labels(endpoint, str(status))
        counter.inc()

    def anonymous_id(request: Request, fields: Mapping[str, Any]) -> tuple[str | None, bool]:
        """(anonymous id to use, whether to set the cookie): the request's, else the cookie's."""
        cookie = _cookie_aid(request)
        given = fields.get("anonymous_id")
        if isinstance(given, str) and given.strip():
            return given, cookie is None
        if cookie:
            return cookie, False
        return None, True

    def set_cookie(request: Request, response: Response, value: str) -> None:
        # Written by hand: http.cookies costs more than the rest of a pixel hit. The value
        # is percent-encoded exactly like the snippet's encodeURIComponent.
        cookie = f"{ANON_COOKIE}={quote(value, safe='')}; Max-Age={COOKIE_MAX_AGE_S}; Path=/; SameSite=Lax"
        if site_domains:  # request.url is costly to build: only when it matters
            host = (request.url.hostname or "").lower()
            domain = next((d for d in site_domains if host == d or host.endswith("." + d)), None)
            if domain:
                cookie += f"; Domain={domain}"
        if request.scope.get("scheme") == "https":
            cookie += "; Secure"
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1", "replace")))

    def produce(kind: str, record: dict[str, Any]) -> None:
        try:
            events().send(kind, record)
        except SchemaError as exc:  # a validated record must fit; if not, it is still bad input
            raise Rejected("schema_mismatch", str(exc)) from exc

    # ---- pixel --------------------------------------------------------------------------
    async def pixel(request: Request) -> Response:
        received = now_ms()
        # parse_qsl straight from the scope: starlette's QueryParams costs a third more.
        fields = pixel_fields(dict(parse_qsl(request.scope["query_string"].decode("latin-1"),
                                             keep_blank_values=True)))
        aid, set_aid = anonymous_id(request, fields)
        if aid is None and not fields.get("contact_id"):
            aid = str(uuid.uuid4())  # first hit of a browser without the snippet
        if aid is not None:
            fields["anonymous_id"] = aid
        status = 200
        try:
            record = touch_record(fields, received_at=received, user_agent=request.headers.get("user-agent"))
            if record["is_bot"]:
                metrics.bots.labels("drop" if drop_bots else "flag").inc()
            if not (record["is_bot"] and drop_bots):
                produce("touch", record)
        except Rejected as exc:
            status = 400
            dead_letter("collector", exc.code, exc.detail, "collector:/p.gif", request.scope["query_string"])
        response = Response(PIXEL_GIF, status_code=status, media_type="image/gif", headers=NO_CACHE)
        if set_aid and aid:
            set_cookie(request, response, aid)
        count("pixel", status)
        return response

    async def baseline(request: Request) -> Response:
        return Response(PIXEL_GIF, media_type="image/gif", headers=NO_CACHE)

    # ---- JSON endpoints ---------------------------------------------------------------
    async def parse_json(request: Request, stage: str, origin: str) -> Any:
        """The JSON body; raises a ready 4xx response (already dead-lettered) when unusable."""
        try:
            raw = await _read_body(request, limit)
        except _TooLarge as exc:
            detail = f"body over {limit} bytes" + (f" (Content-Length {exc.declared})" if exc.declared else "")
            dead_letter(stage, "body_too_large", detail, origin, exc.head)
            raise _Answer(413, {"error": "body_too_large", "detail": detail}) from exc
        try:
            return await _off_loop_if_large(len(raw), json.loads, raw), raw
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            await _off_loop_if_large(len(raw), dead_letter, stage, "invalid_json",
                                     f"the body is not JSON: {str(exc)[:200]}", origin, raw)
            raise _Answer(400, {"error": "invalid_json", "detail": "the body is not JSON"}) from exc

    async def json_events(request: Request, label: str, origin: str) -> tuple[list[Any], dict[str, Any]] | Response:
        """The events of a JSON body, or the 4xx answer (counted and dead-lettered) when unusable."""
        body: Any = None
        try:
            body, _ = await parse_json(request, "collector", origin)
            return _events_of(body)
        except _Answer as answer:
            count(label, answer.status)
            return answer.response()
        except Rejected as exc:
            dead_letter("collector", exc.code, exc.detail, origin,
                        json.dumps(body, default=str).encode("utf-8", "surrogateescape"))
            count(label, 400)
            return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=400)

    def accept_batch(items: list[Any], defaults: Mapping[str, Any], stage: str, origin: str, *,
                     build: Callable[[Mapping[str, Any]], dict[str, Any] | None], kind: str) -> Response:
        if not items:
            dead_letter(stage, "empty_batch", "no events in the body", origin, b"[]")
            return JSONResponse({"error": "empty_batch", "accepted": 0}, status_code=400)
        if len(items) > MAX_BATCH:
            dead_letter(stage, "batch_too_large", f"{len(items)} events > {MAX_BATCH}", origin,
                        json.dumps(items[:10], default=str).encode("utf-8", "surrogateescape"))
            return JSONResponse({"error": "batch_too_large", "accepted": 0}, status_code=413)
        accepted = 0
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise Rejected("invalid_body", "each event must be a JSON object")
                fields = {**defaults, **item} if defaults else item
                record = build(fields)
                if record is not None:
                    produce(kind, record)
                accepted += 1
            except Rejected as exc:
                rejected.append({"index": index, "reason": exc.code, "detail": exc.detail})
                dead_letter(stage, exc.code, f"event {index}: {exc.detail}", origin,
                            json.dumps(item, default=str).encode("utf-8", "surrogateescape"))
        if rejected:
            return JSONResponse({"accepted": accepted, "rejected": rejected}, status_code=400)
        return JSONResponse({"accepted": accepted})

    async def collect(request: Request) -> Response:
        received = now_ms()
        ua = request.headers.get("user-agent")
        parsed = await json_events(request, "collect", "collector:/collect")
        if isinstance(parsed, Response):
            return parsed
        items, defaults = parsed
        cookie_aid, set_aid = anonymous_id(request, defaults)
        new_aid = None
        if cookie_aid is None:
            new_aid = str(uuid.uuid4())

        def build(fields: Mapping[str, Any]) -> dict[str, Any] | None:
            if not fields.get("anonymous_id") and not fields.get("contact_id"):
                fields = {**fields, "anonymous_id": cookie_aid or new_aid}
            record = touch_record(fields, received_at=received, user_agent=ua)
            if record["is_bot"]:
                metrics.bots.labels("drop" if drop_bots else "flag").inc()
                if drop_bots:
                    return None
            return record

        response = await _off_loop_if_large(_declared_length(request), accept_batch, items, defaults, "collector",
                                            "collector:/collect", build=build, kind="touch")
        if set_aid and (cookie_aid or new_aid):
            set_cookie(request, response, str(cookie_aid or new_aid))
        count("collect", response.status_code)
        return response

    async def identify(request: Request) -> Response:
        received = now_ms()
        parsed = await json_events(request, "identify", "collector:/identify")
        if isinstance(parsed, Response):
            return parsed
        items, defaults = parsed
        cookie = _cookie_aid(request)

        def build(fields: Mapping[str, Any]) -> dict[str, Any]:
            if not fields.get("anonymous_id") and cookie:
                fields = {**fields, "anonymous_id": cookie}
            return identify_record(fields, received_at=received)

        response = await _off_loop_if_large(_declared_length(request), accept_batch, items, defaults, "collector",
                                            "collector:/identify", build=build, kind="identify")
        count("identify", response.status_code)
        return response

    # ---- webhooks ---------------------------------------------------------------------
    def webhook(kind: str, endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        origin = f"webhook:/webhooks/{endpoint}"

        def build(fields: Mapping[str, Any]) -> dict[str, Any]:
            received = now_ms()
            if kind == "deal":
                return deal_change_record(fields, received_at=received)
            return contact_change_record(fields, received_at=received)

        async def handler(request: Request) -> Response:
            label = f"webhook_{endpoint}"
            if secret is None:
                count(label, 503)
                return JSONResponse({"error": "webhooks_disabled",
                                     "detail": "LEADSTREAM_WEBHOOK_SECRET is not set: webhooks are disabled"},
                                    status_code=503)
            try:
                raw = await _read_body(request, limit)
            except _TooLarge:
                # Not dead-lettered: an unverifiable body is not an authenticated input.
                metrics.rejected.labels("body_too_large").inc()
                count(label, 413)
                return JSONResponse({"error": "body_too_large"}, status_code=413)
            problem = _verify(request, raw, secret)
            if problem is not None:
                metrics.rejected.labels(f"signature_{problem}").inc()
                count(label, 401)
                return JSONResponse({"error": "unauthorized", "detail": f"signature {problem}"}, status_code=401)
            try:
                items, defaults = _events_of(await _off_loop_if_large(len(raw), json.loads, raw))
            except (ValueError, RecursionError, Rejected) as exc:
                code, detail = (exc.code, exc.detail) if isinstance(exc, Rejected) else (
                    "invalid_json", "the body is not JSON")
                dead_letter("webhook", code, detail, origin, raw)
                count(label, 400)
                return JSONResponse({"error": code, "detail": detail}, status_code=400)
            response = await _off_loop_if_large(len(raw), accept_batch, items, defaults, "webhook", origin,
                                                build=build, kind=kind)
            count(label, response.status_code)
            return response

        return handler

    # ---- operations ---------------------------------------------------------------------
    async def snippet_js(request: Request) -> Response:
        count("snippet", 200)
        return Response(snippet, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})

    async def healthz(request: Request) -> Response:
        p = state["producer"]
        return JSONResponse({"status": "ok" if p is not None else "starting",
                             "delivery_failures": len(p.failures) if p is not None else 0})

    async def metrics_endpoint(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owns = state["producer"] is None
        poller: asyncio.Task[None] | None = None
        if owns:
            state["producer"] = EventProducer(settings, metrics=metrics, poll_thread=False,
                                              **{"linger.ms": COLLECTOR_LINGER_MS})
            poller = asyncio.get_running_loop().create_task(_serve_deliveries(state["producer"]))
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            if owns:
                started = time.monotonic()
                left = state["producer"].close()
                log.info("collector producer flushed in %.2fs (%d undelivered)", time.monotonic() - started, left)
            else:
                state["producer"].flush()

    routes = [
        Route("/p.gif", _guard(pixel), methods=["GET"]),
        Route("/collect", _guard(collect), methods=["POST"]),
        Route("/identify", _guard(identify), methods=["POST"]),
        Route("/webhooks/deals", _guard(webhook("deal", "deals")), methods=["POST"]),
        Route("/webhooks/contacts", _guard(webhook("contact", "contacts")), methods=["POST"]),
        Route("/js/leadstream.js", snippet_js, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if baseline_route:
        routes.append(Route("/baseline.gif", baseline, methods=["GET"]))
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()] or ["*"]
    middleware = [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "OPTIONS"],
                             allow_headers=["Content-Type"], allow_credentials=True, max_age=86_400)]
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


def _cookie_aid(request: Request) -> str | None:
    """The anonymous id of the first-party cookie, if the request carries one."""
    if "cookie" not in request.headers:
        return None
    value = request.cookies.get(ANON_COOKIE)
    return unquote(value) if value else None


class _Answer(Exception):
    """A finished error answer raised out of a helper."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status)


def _guard(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Answer 503 (not 500) when the broker cannot take events: retryable, not a bug."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except BrokerError as exc:
            return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)

    return guarded


def _verify(request: Request, body: bytes, secret: str) -> str | None:
    """None when the signature is valid, else why not: missing, malformed, stale or wrong."""
    timestamp = request.headers.get("x-leadstream-timestamp")
    signature = request.headers.get("x-leadstream-signature")
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
