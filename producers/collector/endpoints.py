"""The collector's request handlers: pixel, JSON beacon, identify, webhooks, snippet, health, metrics.

Each handler turns a request into records (``producers.events``), produces them
(non-blocking) through the app's :class:`EventProducer` and answers; every rejected
input answers 4xx and is dead-lettered with its reason, except webhook calls that
fail authentication (401, counted, nothing produced: an unauthenticated caller must
not be able to write anything). ``producers.collector.app`` routes to these methods.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ground.errors import SchemaError
from ground.settings import Settings
from ground.vocabulary import now_ms
from producers.collector.http import (
    Answer,
    BodyTooLarge,
    cookie_aid,
    declared_length,
    gif_response,
    off_loop_if_large,
    read_body,
    set_aid_cookie,
)
from producers.collector.signing import verify
from producers.dead_letters import DeadLetterPublisher
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
from producers.privacy import Pseudonyms

__all__ = ["MAX_BATCH", "SNIPPET_PATH", "Endpoints", "events_of"]

MAX_BATCH = 1000
SNIPPET_PATH = Path(__file__).resolve().parent.parent / "js" / "leadstream.js"

Build = Callable[[Mapping[str, Any]], dict[str, Any] | None]


def _raw(value: Any) -> bytes:
    return json.dumps(value, default=str).encode("utf-8", "surrogateescape")


def events_of(body: Any) -> tuple[list[Any], dict[str, Any]]:
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


class Endpoints:
    """The handlers of one collector app, sharing its settings, metrics and producer."""

    def __init__(self, settings: Settings, metrics: CaptureMetrics, producer: EventProducer | None) -> None:
        self.metrics = metrics
        #: ``{"producer": ...}``, filled by the app's lifespan when the app owns its producer;
        #: exposed as ``app.state.events`` so callers can flush it.
        self.state: dict[str, EventProducer | None] = {"producer": producer}
        self.secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.ids = Pseudonyms.of(settings.id_secret)
        self.limit = settings.max_body_bytes
        self.site_domains = settings.site_domain_list
        self.drop_bots = settings.bot_policy == "drop"
        self.snippet = SNIPPET_PATH.read_bytes()
        self._counters: dict[tuple[str, int], Any] = {}

    # ---- shared steps -----------------------------------------------------------------
    @property
    def producer(self) -> EventProducer | None:
        return self.state["producer"]

    def events(self) -> EventProducer:
        producer = self.producer
        assert producer is not None, "collector used outside its lifespan"
        return producer

    def dead_letter(self, stage: str, code: str, detail: str, origin: str, payload: bytes) -> None:
        DeadLetterPublisher(self.events()).publish(stage=stage, reason=code, detail=detail, origin=origin,
                                                   payload=payload)

    async def signed_body(self, request: Request, label: str) -> bytes | Response:
        """The body of a request signed with the webhook secret, or the answer that refuses it.

        503 while no secret is set, 413 beyond the body limit, 401 for a missing, stale or
        wrong signature. None of these is dead-lettered: an unverified body is no
        authenticated input.
        """
        if self.secret is None:
            self.count(label, 503)
            return JSONResponse({"error": "webhooks_disabled",
                                 "detail": "LEADSTREAM_WEBHOOK_SECRET is not set: signed endpoints are disabled"},
                                status_code=503)
        try:
            raw = await read_body(request, self.limit)
        except BodyTooLarge:
            self.metrics.rejected.labels("body_too_large").inc()
            self.count(label, 413)
            return JSONResponse({"error": "body_too_large"}, status_code=413)
        problem = verify(request.headers, raw, self.secret)
        if problem is not None:
            self.metrics.rejected.labels(f"signature_{problem}").inc()
            self.count(label, 401)
            return JSONResponse({"error": "unauthorized", "detail": f"signature {problem}"}, status_code=401)
        return raw

    def count(self, endpoint: str, status: int) -> None:
        counter = self._counters.get((endpoint, status))
        if counter is None:  # label lookups take a lock: resolve each child once
            counter = self._counters[(endpoint, status)] = self.metrics.requests.labels(endpoint, str(status))
        counter.inc()

    def anonymous_id(self, request: Request, fields: Mapping[str, Any]) -> tuple[str | None, bool]:
        """(anonymous id to use, whether to set the cookie): the request's, else the cookie's."""
        cookie = cookie_aid(request)
        given = fields.get("anonymous_id")
        if isinstance(given, str) and given.strip():
            return given, cookie is None
        if cookie:
            return cookie, False
        return None, True

    def produce(self, kind: str, record: dict[str, Any]) -> None:
        try:
            self.events().send(kind, record)
        except SchemaError as exc:  # a validated record must fit; if not, it is still bad input
            raise Rejected("schema_mismatch", str(exc)) from exc

    def keep_touch(self, record: dict[str, Any]) -> bool:
        """Count a bot hit; False when the bot policy drops it."""
        if record["is_bot"]:
            self.metrics.bots.labels("drop" if self.drop_bots else "flag").inc()
            return not self.drop_bots
        return True

    # ---- pixel --------------------------------------------------------------------------
    async def pixel(self, request: Request) -> Response:
        received = now_ms()
        # parse_qsl straight from the scope: starlette's QueryParams costs a third more.
        fields = pixel_fields(dict(parse_qsl(request.scope["query_string"].decode("latin-1"),
                                             keep_blank_values=True)))
        aid, set_aid = self.anonymous_id(request, fields)
        if aid is None and not fields.get("contact_id"):
            aid = str(uuid.uuid4())  # first hit of a browser without the snippet
        if aid is not None:
            fields["anonymous_id"] = aid
        status = 200
        try:
            record = touch_record(fields, received_at=received, user_agent=request.headers.get("user-agent"))
            if self.keep_touch(record):
                self.produce("touch", record)
        except Rejected as exc:
            status = 400
            self.dead_letter("collector", exc.code, exc.detail, "collector:/p.gif", request.scope["query_string"])
        response = gif_response(status)
        if set_aid and aid:
            set_aid_cookie(request, response, aid, self.site_domains)
        self.count("pixel", status)
        return response

    # ---- JSON endpoints ---------------------------------------------------------------
    async def parse_json(self, request: Request, stage: str, origin: str) -> Any:
        """The JSON body; raises a ready 4xx answer (already dead-lettered) when unusable."""
        try:
            raw = await read_body(request, self.limit)
        except BodyTooLarge as exc:
            detail = f"body over {self.limit} bytes" + (f" (Content-Length {exc.declared})" if exc.declared else "")
            self.dead_letter(stage, "body_too_large", detail, origin, exc.head)
            raise Answer(413, {"error": "body_too_large", "detail": detail}) from exc
        try:
            return await off_loop_if_large(len(raw), json.loads, raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            await off_loop_if_large(len(raw), self.dead_letter, stage, "invalid_json",
                                    f"the body is not JSON: {str(exc)[:200]}", origin, raw)
            raise Answer(400, {"error": "invalid_json", "detail": "the body is not JSON"}) from exc

    async def json_events(self, request: Request, label: str,
                          origin: str) -> tuple[list[Any], dict[str, Any]] | Response:
        """The events of a JSON body, or the 4xx answer (counted and dead-lettered) when unusable."""
        body: Any = None
        try:
            body = await self.parse_json(request, "collector", origin)
            return events_of(body)
        except Answer as answer:
            self.count(label, answer.status)
            return answer.response()
        except Rejected as exc:
            self.dead_letter("collector", exc.code, exc.detail, origin, _raw(body))
            self.count(label, 400)
            return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=400)

    def accept_batch(self, items: list[Any], defaults: Mapping[str, Any], stage: str, origin: str, *,
                     build: Build, kind: str) -> Response:
        if not items:
            self.dead_letter(stage, "empty_batch", "no events in the body", origin, b"[]")
            return JSONResponse({"error": "empty_batch", "accepted": 0}, status_code=400)
        if len(items) > MAX_BATCH:
            self.dead_letter(stage, "batch_too_large", f"{len(items)} events > {MAX_BATCH}", origin,
                             _raw(items[:10]))
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
                    self.produce(kind, record)
                accepted += 1
            except Rejected as exc:
                rejected.append({"index": index, "reason": exc.code, "detail": exc.detail})
                self.dead_letter(stage, exc.code, f"event {index}: {exc.detail}", origin, _raw(item))
        if rejected:
            return JSONResponse({"accepted": accepted, "rejected": rejected}, status_code=400)
        return JSONResponse({"accepted": accepted})

    async def collect(self, request: Request) -> Response:
        received = now_ms()
        ua = request.headers.get("user-agent")
        parsed = await self.json_events(request, "collect", "collector:/collect")
        if isinstance(parsed, Response):
            return parsed
        items, defaults = parsed
        cookie_id, set_aid = self.anonymous_id(request, defaults)
        new_aid = None
        if cookie_id is None:
            new_aid = str(uuid.uuid4())

        def build(fields: Mapping[str, Any]) -> dict[str, Any] | None:
            if not fields.get("anonymous_id") and not fields.get("contact_id"):
                fields = {**fields, "anonymous_id": cookie_id or new_aid}
            record = touch_record(fields, received_at=received, user_agent=ua)
            return record if self.keep_touch(record) else None

        response = await off_loop_if_large(declared_length(request), self.accept_batch, items, defaults,
                                           "collector", "collector:/collect", build=build, kind="touch")
        if set_aid and (cookie_id or new_aid):
            set_aid_cookie(request, response, str(cookie_id or new_aid), self.site_domains)
        self.count("collect", response.status_code)
        return response

    async def identify(self, request: Request) -> Response:
        received = now_ms()
        parsed = await self.json_events(request, "identify", "collector:/identify")
        if isinstance(parsed, Response):
            return parsed
        items, defaults = parsed
        cookie = cookie_aid(request)

        def build(fields: Mapping[str, Any]) -> dict[str, Any]:
            if not fields.get("anonymous_id") and cookie:
                fields = {**fields, "anonymous_id": cookie}
            return identify_record(fields, received_at=received, ids=self.ids)

        response = await off_loop_if_large(declared_length(request), self.accept_batch, items, defaults,
                                           "collector", "collector:/identify", build=build, kind="identify")
        self.count("identify", response.status_code)
        return response

    # ---- webhooks ---------------------------------------------------------------------
    def webhook(self, kind: str, endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        """The handler of ``POST /webhooks/{endpoint}``: signed ``kind`` changes."""
        origin = f"webhook:/webhooks/{endpoint}"
        label = f"webhook_{endpoint}"
        def build(fields: Mapping[str, Any]) -> dict[str, Any]:
            if kind == "deal":
                return deal_change_record(fields, received_at=now_ms())
            return contact_change_record(fields, received_at=now_ms(), ids=self.ids)

        async def handler(request: Request) -> Response:
            raw = await self.signed_body(request, label)
            if isinstance(raw, Response):
                return raw
            try:
                items, defaults = events_of(await off_loop_if_large(len(raw), json.loads, raw))
            except (ValueError, RecursionError, Rejected) as exc:
                code, detail = (exc.code, exc.detail) if isinstance(exc, Rejected) else (
                    "invalid_json", "the body is not JSON")
                self.dead_letter("webhook", code, detail, origin, raw)
                self.count(label, 400)
                return JSONResponse({"error": code, "detail": detail}, status_code=400)
            response = await off_loop_if_large(len(raw), self.accept_batch, items, defaults, "webhook", origin,
                                               build=build, kind=kind)
            self.count(label, response.status_code)
            return response

        return handler

    # ---- operations ---------------------------------------------------------------------
    async def snippet_js(self, request: Request) -> Response:
        self.count("snippet", 200)
        return Response(self.snippet, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})

    async def healthz(self, request: Request) -> Response:
        p = self.producer
        return JSONResponse({"status": "ok" if p is not None else "starting",
                             "delivery_failures": len(p.failures) if p is not None else 0})

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
