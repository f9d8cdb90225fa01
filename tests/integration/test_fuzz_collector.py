"""Property-based fuzzing of every collector endpoint against the real broker.

The collector runs in-process behind a real uvicorn server (httptools, as in
production) on a loopback port, with its real Kafka producer, so requests go over a
socket and every one has a client timeout: a hang fails the test instead of blocking it.

For each endpoint hypothesis mixes valid events with hostile ones (random JSON shapes,
wrong types, missing fields, strings at and over the field limits, bodies at and over
LEADSTREAM_MAX_BODY_BYTES, deep nesting, invalid UTF-8, huge numbers, NaN/Infinity,
duplicate keys, malformed query strings, bad signatures). Every answer must be 2xx or
4xx, and at the end the topics are read back: for each endpoint, the events on its raw
topic plus its dead letters equal the events sent, counted independently of the answers:

- one pixel hit is one event;
- a JSON body holding a batch of 1..1000 events counts each event; any other body
  (not JSON, over the size limit, not an object or list, empty batch, more than 1000
  events, ``events`` not a list) is one event, rejected as a whole with one dead letter;
- a webhook call that fails authentication (or exceeds the size limit, which is checked
  before authentication) is no event: it answers 401/413, produces nothing, and is counted
  in ``leadstream_rejected_total``;
- a request the HTTP parser itself refuses (bytes outside the request-line grammar, a
  request line over 64 KiB) never reaches the app: it answers 400 and produces nothing.

Events valid by construction must be on their raw topic (by event id), and every dead
letter must carry a documented reason code.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from ground.settings import Settings
from leadstream.testing.processes import free_port
from producers.collector import create_app, sign
from producers.collector.endpoints import MAX_BATCH
from producers.events import CONTACT_CHANGES, DEAL_CHANGES, LIFECYCLE_STAGES
from schemas.vocabulary import TOUCH_TYPES
from tests.support.capture import Consumed, all_topic_counts, read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "test-secret"
LIMIT = 64 * 1024  # LEADSTREAM_MAX_BODY_BYTES of these tests: above the off-loop threshold (32 KiB)
TIMEOUT_S = 15.0  # the hang guard of every request
#: The request line httptools accepts: beyond this the HTTP layer refuses it (400) before the app.
MAX_TARGET = 60_000
PROTOCOL_TARGET = 70_000
REASONS = {
    "missing_field", "invalid_field", "field_too_long", "invalid_string", "invalid_url", "invalid_event_id",
    "invalid_event_time", "invalid_device_times", "invalid_type", "invalid_touch_type", "invalid_change",
    "invalid_lifecycle_stage", "invalid_email", "invalid_amount", "invalid_currency", "invalid_merge",
    "invalid_json", "invalid_body", "empty_batch", "batch_too_large", "body_too_large", "too_many_cells",
    "schema_mismatch",
}
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example,
                                       HealthCheck.filter_too_much])


# ---- the collector on a real socket ------------------------------------------------------
@dataclass
class Collector:
    """A running collector: its base URL, host/port for raw sockets, and the app."""

    url: str
    port: int
    app: Starlette

    def flush(self) -> None:
        producer = self.app.state.events["producer"]
        assert producer.flush(60) == 0, "events not acknowledged by the broker"
        assert producer.failures == [], producer.failures


@contextmanager
def collector(settings_: Settings) -> Iterator[Collector]:
    """The collector app served by uvicorn in a thread of this process (lifespan included)."""
    app = create_app(settings_)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           http="httptools", loop="asyncio", lifespan="on"))
    thread = threading.Thread(target=server.run, name="fuzz-collector", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the collector did not start"
        time.sleep(0.05)  # waiting for uvicorn's own started flag, with a deadline
    try:
        yield Collector(f"http://127.0.0.1:{port}", port, app)
    finally:
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "the collector did not shut down"


def raw_get(port: int, target: bytes, headers: bytes = b"") -> int:
    """GET ``target`` exactly as given (no client-side encoding); the status, within the timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
        conn.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     + headers + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(4096)  # raises socket.timeout: the hang guard
            if not chunk:
                break
            data += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert match, f"no HTTP answer to GET {target[:120]!r}: {data[:200]!r}"
    return int(match.group(1))


def metric_total(text: str, name: str, label_pattern: str) -> float:
    """Sum of the Prometheus samples of ``name`` whose labels match ``label_pattern``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{([^}}]*)\}} (\S+)", line)
        if match and re.search(label_pattern, match.group(1)):
            total += float(match.group(2))
    return total


# ---- bookkeeping -----------------------------------------------------------------------------
@dataclass
class Ledger:
    """Per endpoint origin: events sent, what the answers said, event ids that must be accepted."""

    sent: Counter[str] = field(default_factory=Counter)
    answered_accepted: Counter[str] = field(default_factory=Counter)
    answered_rejected: Counter[str] = field(default_factory=Counter)
    must_accept: dict[str, set[str]] = field(default_factory=dict)
    #: event id -> the request that carried it and its answer, for the failure message
    requests: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    unauthenticated: int = 0
    protocol_refused: int = 0

    def answer(self, origin: str, status: int, body: Any) -> None:
        self.statuses[status] += 1
        assert status < 500, f"{origin}: {status} {body!r}"
        assert 200 <= status < 300 or 400 <= status < 500, f"{origin}: {status}"
        if isinstance(body, dict) and "accepted" in body:
            self.answered_accepted[origin] += body["accepted"]
            self.answered_rejected[origin] += len(body.get("rejected", [])) or (1 if status >= 400 else 0)
        elif status >= 400:
            self.answered_rejected[origin] += 1
        else:
            self.answered_accepted[origin] += 1

    def expect(self, origin: str, *event_ids: str, request: str = "") -> None:
        self.must_accept.setdefault(origin, set()).update(event_ids)
        for event_id in event_ids:
            self.requests[event_id] = request

    def check(self, topics: Settings, raw_topics: dict[str, str]) -> None:
        """Read the topics back: raw + dead letters = sent, per origin (``raw_topics``: origin -> topic)."""
        counts = all_topic_counts(topics)
        others = {t: n for t, n in counts.items() if t not in {*raw_topics.values(), "dead-letter"}}
        assert set(others.values()) <= {0}, f"unexpected messages: {others}"
        dead = read_all(topics, "dead-letter", at_least=counts["dead-letter"])
        assert len(dead) == counts["dead-letter"]
        bad = [(d.record["origin"], d.record["reason"]) for d in dead if d.record["reason"] not in REASONS]
        assert not bad, f"dead letters without a documented reason: {bad[:5]}"
        dead_by_origin = Counter(str(d.record["origin"]) for d in dead)
        assert set(dead_by_origin) <= set(raw_topics), dead_by_origin
        for origin, topic in raw_topics.items():
            messages: list[Consumed] = read_all(topics, topic, at_least=counts[topic])
            assert len(messages) == counts[topic]
            assert len(messages) + dead_by_origin[origin] == self.sent[origin], (
                f"{origin}: {len(messages)} accepted + {dead_by_origin[origin]} dead-lettered "
                f"!= {self.sent[origin]} sent")
            assert len(messages) == self.answered_accepted[origin], origin
            assert dead_by_origin[origin] == self.answered_rejected[origin], origin
            ids = {str(m.record["event_id"]) for m in messages}
            missing = self.must_accept.get(origin, set()) - ids
            assert not missing, f"{origin}: valid events not on {topic}: " + "; ".join(
                f"{event_id} from {self.requests.get(event_id, '?')}" for event_id in sorted(missing)[:3])
        assert sum(self.sent.values()) > 0 and sum(len(v) for v in self.must_accept.values()) > 0


def json_units(raw: bytes) -> int:
    """Events in a JSON body as the collector counts them (see the module docstring)."""
    if len(raw) > LIMIT:
        return 1
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return 1
    items: Any = body
    if isinstance(body, dict):
        items = body.get("events", [body])
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        return 1
    return len(items)


# ---- strategies: building blocks ---------------------------------------------------------------
SAFE_CHAR = st.characters(blacklist_categories=("Cs", "Cc"))
ID = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x7F), min_size=1, max_size=40)
SAFE_TEXT = st.text(SAFE_CHAR, min_size=1, max_size=60).filter(lambda s: s.strip() != "")
UUID = st.uuids().map(str)
ISO_TIME = st.integers(1_577_836_800, 1_735_689_600).map(
    lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s)))
URL = st.builds(lambda path, src: f"https://example.com/{quote(path)}?utm_source={quote(src)}",
                st.text(max_size=20), ID)
#: Lengths at and around every field limit (ids 256, text 1024, url 4096) and beyond.
EDGE_LENGTHS = st.sampled_from([0, 1, 255, 256, 257, 1023, 1024, 1025, 4095, 4096, 4097, 20_000])
HUGE_NUMBERS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, 1e308, -1e308, 1e-320, 2**53 + 1, -1,
                                float("nan"), float("inf"), float("-inf")])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),  # includes lone surrogates and control characters
    EDGE_LENGTHS.map(lambda n: "x" * n),
    EDGE_LENGTHS.map(lambda n: "é" * n),
    st.sampled_from(["", " ", "\x00", "\ud800", "nope", "page_view", "ad_click", "NaN", "Infinity", "1e999",
                     "https://example.com/?utm_source=x", "ftp://nope", "http://[::1", "javascript:alert(1)",
                     "a@b.co", "not an email", "2025-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "9999-01-01",
                     "1735689600000", "-5", "12,500.50", "eur", "EURO", "merge", "created", "won", "%40%",
                     "6f1c7a8e-0000-4000-8000-000000000001", "C-1;C-2;;", "9" * 30]),
    st.integers(-(2**70), 2**70).map(str),
)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), HUGE_NUMBERS,
                        HOSTILE_TEXT)
JSON_VALUE = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=10)


def hostile_event(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects over the endpoint's field names (and some others) with values of any shape."""
    return st.dictionaries(st.sampled_from([*keys, "zz", "", "events"]),
                           st.one_of(HOSTILE_TEXT, JSON_VALUE, ID, UUID, ISO_TIME), max_size=10)


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * depth + leaf + b"}" * depth


# Depths clear of the interpreter's recursion limit (about 1000), on both sides: near it the
# outcome depends on how deep the parsing call stack already is.
DEPTHS = st.sampled_from([1, 10, 100, 500, 700, 1500, 5000, 20_000])


@st.composite
def json_body(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], keys: list[str],
              safe_defaults: st.SearchStrategy[dict[str, Any]]) -> tuple[bytes, list[str]]:
    """(raw body, event ids that must be accepted): a batch shape, mutated or not."""
    events = draw(st.lists(st.one_of(valid, hostile_event(keys)), max_size=6))
    shape = draw(st.sampled_from(["one", "list", "events", "events-hostile", "value", "empty", "too-many",
                                  "padded", "deep", "deep-property", "duplicate-keys", "nan", "invalid-utf8",
                                  "truncated", "binary", "events-not-list"]))
    expect = [e["event_id"] for e in events if e.get("__valid__")]
    events = [{k: v for k, v in e.items() if k != "__valid__"} for e in events]
    body: Any
    if shape == "one":
        body, expect = (events[0], expect[:1] if events[0].get("event_id") in expect else []) if events else ({}, [])
    elif shape == "list":
        body = events
    elif shape == "events":
        body = {"events": events, **draw(safe_defaults)}
    elif shape == "events-hostile":  # batch defaults of any shape apply to every event lacking them
        body, expect = {"events": events, **draw(hostile_event(keys))}, []
    elif shape == "value":
        body, expect = draw(JSON_VALUE), []
    elif shape == "empty":
        body, expect = draw(st.sampled_from([[], {"events": []}])), []
    elif shape == "too-many":
        body, expect = [{"x": i} for i in range(MAX_BATCH + draw(st.integers(1, 5)))], []
    elif shape == "events-not-list":
        body, expect = {"events": draw(JSON_SCALAR)}, []
    else:
        body = None
    if body is not None:  # a batch over the size limit is refused whole, valid events included
        raw = json.dumps(body, allow_nan=True).encode()
        return raw, expect if len(raw) <= LIMIT else []
    one = {k: v for k, v in draw(valid).items() if k != "__valid__"}
    text = json.dumps(one, allow_nan=True).encode()
    if shape == "padded":  # a valid event with an unknown field filling the body to the limit, or just over
        target = LIMIT + draw(st.sampled_from([-1, 0, 1, 500]))
        prefix = b'{"zz_pad":"'
        fill = max(target - len(prefix) - len(b'",') - len(text) + 1, 0)
        raw = prefix + b"p" * fill + b'",' + text[1:]
        assert len(raw) == target
        return raw, [one["event_id"]] if len(raw) <= LIMIT else []
    if shape == "deep":
        depth = draw(DEPTHS)
        return draw(st.sampled_from([b"[" * depth + b"]" * depth, nested(depth),
                                     b'{"events":' + b"[" * depth + b"]" * depth + b"}"])), []
    if shape == "deep-property":
        return text[:-1] + b',"properties":' + nested(draw(DEPTHS)) + b"}", []
    if shape == "duplicate-keys":  # the last one wins: a valid event whose fields are redefined
        key = draw(st.sampled_from(keys))
        return text[:-1] + f',"{key}":'.encode() + json.dumps(draw(JSON_SCALAR), allow_nan=True).encode() + b"}", []
    if shape == "nan":
        key = draw(st.sampled_from(keys))
        token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 5000]))
        return text[:-1] + f',"{key}":'.encode() + token + b"}", []
    if shape == "invalid-utf8":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])) \
            + text[at:], []
    if shape == "truncated":
        return text[:draw(st.integers(0, max(len(text) - 1, 0)))], []
    return draw(st.binary(max_size=200)), []


def valid_touch() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"__valid__": st.just(True), "event_id": UUID, "anonymous_id": ID,
         "type": st.sampled_from([t for t in TOUCH_TYPES if t != "page_view"] + ["page_view"]), "url": URL},
        optional={"title": SAFE_TEXT, "event_time": ISO_TIME, "referrer": URL,
                  "properties": st.dictionaries(ID, st.one_of(SAFE_TEXT, st.integers(-(2**63), 2**63), st.booleans()),
                                                max_size=3),
                  "utm_campaign": SAFE_TEXT, "created_at": st.just(1_735_689_600_000),
                  "sent_at": st.just(1_735_689_601_000)})


def valid_identify() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"__valid__": st.just(True), "event_id": UUID, "anonymous_id": ID, "contact_id": ID},
                              optional={"traits": st.dictionaries(ID, SAFE_TEXT, max_size=3), "source": SAFE_TEXT,
                                        "event_time": ISO_TIME}),
        st.fixed_dictionaries({"__valid__": st.just(True), "event_id": UUID, "anonymous_id": ID,
                               "email": ID.map(lambda s: f"{s}@example.com")}))


def valid_deal() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"__valid__": st.just(True), "event_id": UUID, "event_time": ISO_TIME, "deal_id": ID,
         "change": st.sampled_from(DEAL_CHANGES), "primary_contact_id": ID},
        optional={"amount": st.one_of(st.integers(0, 10**9), st.floats(0, 1e12), st.just("12,500.50")),
                  "currency": st.sampled_from(["USD", "eur", "Gbp"]), "contact_ids": st.lists(ID, max_size=3),
                  "version": st.integers(0, 10**6), "stage": SAFE_TEXT, "owner": SAFE_TEXT})


def valid_contact() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"__valid__": st.just(True), "event_id": UUID, "event_time": ISO_TIME, "contact_id": ID,
         "change": st.sampled_from([c for c in CONTACT_CHANGES if c != "merge"])},
        optional={"contact_source": SAFE_TEXT, "lifecycle_stage": st.sampled_from([*LIFECYCLE_STAGES, "MQL"]),
                  "email": ID.map(lambda s: f"{s}@example.org"), "owner": SAFE_TEXT,
                  "properties": st.dictionaries(ID, SAFE_TEXT, max_size=3)})


TOUCH_KEYS = ["event_id", "event_time", "anonymous_id", "contact_id", "type", "touch_type", "url", "referrer",
              "title", "properties", "created_at", "sent_at", "utm_source", "gclid", "user_agent"]
IDENTIFY_KEYS = ["event_id", "event_time", "anonymous_id", "contact_id", "email", "traits", "source",
                 "created_at", "sent_at"]
DEAL_KEYS = ["event_id", "event_time", "deal_id", "change", "stage", "amount", "currency", "owner",
             "primary_contact_id", "contact_ids", "pipeline", "close_reason", "source_system", "version"]
CONTACT_KEYS = ["event_id", "event_time", "contact_id", "change", "contact_source", "owner", "lifecycle_stage",
                "merged_into", "email", "source_system", "properties"]
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "", "multipart/form-data; boundary=x"])
SAFE_DEFAULTS: st.SearchStrategy[dict[str, Any]] = st.one_of(st.just({}), st.fixed_dictionaries({"anonymous_id": ID}))
COOKIE = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300))


# ---- pixel -----------------------------------------------------------------------------------------
PIXEL_KEYS = ["u", "r", "aid", "t", "eid", "ti", "cid", "ct", "st", "utm_source", "utm_medium", "gclid", "zz"]
VALID_HIT = st.fixed_dictionaries({"u": URL, "aid": ID, "eid": UUID,
                                   "t": st.sampled_from(TOUCH_TYPES)}, optional={"ti": SAFE_TEXT, "cid": ID})
PRINTABLE = [chr(c) for c in range(0x21, 0x7F) if chr(c) != "#"]


@st.composite
def pixel_request(draw: st.DrawFn) -> tuple[bytes, bytes, str | None, bool]:
    """(raw request target, extra header lines, event id that must be accepted, refused by HTTP itself)."""
    shape = draw(st.sampled_from(["valid", "pairs", "raw", "percent-bytes", "duplicates", "long", "protocol"]))
    expect: str | None = None
    protocol = False
    if shape == "valid":
        hit = draw(VALID_HIT)
        query, expect = urlencode(hit), hit["eid"]
    elif shape == "pairs":
        query = urlencode(draw(st.lists(st.tuples(st.sampled_from(PIXEL_KEYS),
                                                  st.one_of(HOSTILE_TEXT, HUGE_NUMBERS.map(str))), max_size=8)),
                          errors="surrogatepass")  # lone surrogates become invalid UTF-8 on the wire
    elif shape == "raw":  # unencoded, possibly malformed escapes: anything a client can put on the wire
        query = draw(st.text(st.sampled_from(PRINTABLE), max_size=200))
    elif shape == "percent-bytes":  # percent-encoded bytes that are not UTF-8
        key = draw(st.sampled_from(PIXEL_KEYS))
        query = f"u=https%3A%2F%2Fexample.com%2F&aid=a&{key}=" + "".join(
            f"%{b:02x}" for b in draw(st.binary(min_size=1, max_size=40)))
    elif shape == "duplicates":
        hit = draw(VALID_HIT)
        query = urlencode([*hit.items(), (draw(st.sampled_from(list(hit))), draw(HOSTILE_TEXT))],
                          errors="surrogatepass")
    elif shape == "long":  # long query strings the HTTP layer still passes to the app
        query = f"u=https%3A%2F%2Fexample.com%2F&aid=a&{draw(st.sampled_from(PIXEL_KEYS))}=" + "x" * draw(
            st.sampled_from([1024, 4096, 4097, 30_000, MAX_TARGET - 100]))
    else:
        protocol = True
        query = ""
    target = b"/p.gif?" + query.encode("ascii")[:MAX_TARGET]
    if protocol:  # bytes outside the request-line grammar, or a line over its 64 KiB limit
        bad = draw(st.sampled_from([b"\xff\xfe", b"\x01", b"\x7f", b" x", b"\xc3\xa9", b"a" * PROTOCOL_TARGET]))
        target = b"/p.gif?u=https%3A%2F%2Fexample.com%2F&aid=" + bad
    headers = b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0\r\n"
    cookie = draw(COOKIE) if expect is None else None
    if cookie is not None:
        headers += b"Cookie: ls_aid=" + cookie.encode() + b"\r\n"
    return target, headers, expect, protocol


def test_pixel_fuzz(topics: Settings) -> None:
    """GET /p.gif with any query string: 200/400 GIF, and touches + dead letters = hits."""
    ledger = Ledger()
    origin = "collector:/p.gif"
    with collector(topics.model_copy(update={"max_body_bytes": LIMIT})) as server:

        @FUZZ
        @given(pixel_request())
        @example((b"/p.gif?u=https%3A%2F%2Fexample.com%2F&aid=a1&t=nope", b"", None, False))
        def hit(request: tuple[bytes, bytes, str | None, bool]) -> None:
            target, headers, expect, protocol = request
            status = raw_get(server.port, target, headers)
            if protocol:
                assert status == 400, target[:100]
                ledger.protocol_refused += 1
                return
            ledger.sent[origin] += 1
            ledger.answer(origin, status, None)
            assert status in (200, 400), status
            if expect is not None:
                assert status == 200, target
                ledger.expect(origin, expect)

        hit()
        server.flush()
    ledger.check(topics, {origin: "touches"})


def _post(client: httpx.Client, path: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    try:
        return client.post(path, content=raw, headers=headers)
    except httpx.TimeoutException as exc:  # the hang guard
        raise AssertionError(f"{path} did not answer within {TIMEOUT_S}s: {raw[:200]!r}") from exc


def _answer_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def test_beacon_and_identify_fuzz(topics: Settings) -> None:
    """POST /collect and /identify with any body: per endpoint, accepted + dead-lettered = events sent."""
    ledger = Ledger()
    endpoints = {"/collect": (valid_touch(), TOUCH_KEYS), "/identify": (valid_identify(), IDENTIFY_KEYS)}
    with collector(topics.model_copy(update={"max_body_bytes": LIMIT})) as server, \
            httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:

        @FUZZ
        @given(st.sampled_from(sorted(endpoints)).flatmap(
            lambda path: st.tuples(st.just(path), json_body(endpoints[path][0], endpoints[path][1], SAFE_DEFAULTS),
                                   COOKIE, CONTENT_TYPES)))
        @example(("/collect", (b'{"anonymous_id":"a1","url":"https://example.com/","event_id":'
                               b'"6f1c7a8e-0000-4000-8000-00000000c011"}', ["6f1c7a8e-0000-4000-8000-00000000c011"]),
                  None, "text/plain"))
        @example(("/identify", (b'{"anonymous_id":"a1","contact_id":"C-1","event_id":'
                                b'"6f1c7a8e-0000-4000-8000-00000000c012"}', ["6f1c7a8e-0000-4000-8000-00000000c012"]),
                  None, "application/json"))
        def post(case: tuple[str, tuple[bytes, list[str]], str | None, str]) -> None:
            path, (raw, expect), cookie, content_type = case
            headers = {"Content-Type": content_type, "User-Agent": "Mozilla/5.0 Firefox/130.0"}
            if cookie is not None and not expect:
                headers["Cookie"] = f"ls_aid={cookie}"
            origin = f"collector:{path}"
            response = _post(client, path, raw, headers)
            ledger.sent[origin] += json_units(raw)
            ledger.answer(origin, response.status_code, _answer_body(response))
            assert response.status_code in (200, 400, 413), response.status_code
            if expect:
                ledger.expect(origin, *expect, request=f"{raw[:600]!r} -> {response.status_code} {response.text[:600]}")

        post()
        server.flush()
    ledger.check(topics, {"collector:/collect": "touches", "collector:/identify": "identities"})


SIGNATURE_CASES = ["valid"] * 8 + ["missing", "no-timestamp", "wrong-secret", "stale", "future",
                   "malformed-timestamp", "other-body", "garbage"]


def _signature_headers(case: str, raw: bytes) -> dict[str, str]:
    now = int(time.time())
    ts: int | str = now
    secret, body = SECRET, raw
    if case == "wrong-secret":
        secret = "not-the-secret"
    elif case == "stale":
        ts = now - 301
    elif case == "future":
        ts = now + 301
    elif case == "other-body":
        body = raw + b" "
    headers = {"Content-Type": "application/json"}
    if case == "missing":
        return headers
    if case == "malformed-timestamp":
        ts = f"{now}.5"
    headers["X-Leadstream-Timestamp"] = str(ts)
    headers["X-Leadstream-Signature"] = sign(secret, ts, body)
    if case == "no-timestamp":
        del headers["X-Leadstream-Timestamp"]
    if case == "garbage":
        headers["X-Leadstream-Signature"] = "sha256=" + "0" * 64
    return headers


def test_webhooks_fuzz(topics: Settings) -> None:
    """Signed and unsigned deal/contact webhooks with any body: nothing unauthenticated is written,
    and authenticated events are accepted or dead-lettered, one each."""
    ledger = Ledger()
    endpoints = {"/webhooks/deals": (valid_deal(), DEAL_KEYS), "/webhooks/contacts": (valid_contact(), CONTACT_KEYS)}
    with collector(topics.model_copy(update={"max_body_bytes": LIMIT})) as server, \
            httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:

        @FUZZ
        @given(st.sampled_from(sorted(endpoints)).flatmap(
            lambda path: st.tuples(st.just(path), json_body(endpoints[path][0], endpoints[path][1], st.just({})),
                                   st.sampled_from(SIGNATURE_CASES))))
        @example(("/webhooks/deals", (b'{"event_id":"6f1c7a8e-0000-4000-8000-0000000000d1","event_time":'
                                      b'"2025-05-02T09:30:00Z","deal_id":"D-1","change":"won",'
                                      b'"primary_contact_id":"C-1"}', ["6f1c7a8e-0000-4000-8000-0000000000d1"]),
                  "valid"))
        @example(("/webhooks/contacts", (b'{"event_id":"6f1c7a8e-0000-4000-8000-0000000000c1","event_time":'
                                         b'"2025-05-02T09:30:00Z","contact_id":"C-1","change":"created"}',
                                         ["6f1c7a8e-0000-4000-8000-0000000000c1"]), "valid"))
        @example(("/webhooks/contacts", (b'{"contact_id":"C-1","change":"created"}', []), "stale"))
        def post(case: tuple[str, tuple[bytes, list[str]], str]) -> None:
            path, (raw, expect), signature = case
            origin = f"webhook:{path}"
            response = _post(client, path, raw, _signature_headers(signature, raw))
            status = response.status_code
            assert status < 500, (status, response.text)
            if len(raw) > LIMIT:  # refused before authentication: not an input, nothing written
                assert status == 413, status
                ledger.unauthenticated += 1
                ledger.statuses[status] += 1
                return
            if signature != "valid":
                assert status == 401, (signature, status)
                ledger.unauthenticated += 1
                ledger.statuses[status] += 1
                return
            ledger.sent[origin] += json_units(raw)
            ledger.answer(origin, status, _answer_body(response))
            assert status in (200, 400, 413), status
            if expect:
                ledger.expect(origin, *expect)

        post()
        server.flush()
        metrics = client.get("/metrics").text
    assert metric_total(metrics, "leadstream_rejected_total", r'reason="signature_') == ledger.statuses[401]
    assert metric_total(metrics, "leadstream_collector_requests_total",
                        r'endpoint="webhook_.*status="401"') \
        == ledger.statuses[401]
    assert ledger.statuses[401] > 0
    ledger.check(topics, {"webhook:/webhooks/deals": "deals", "webhook:/webhooks/contacts": "contacts"})


OTHER_PATHS = ["/js/leadstream.js", "/healthz", "/metrics", "/p.gif", "/collect", "/identify", "/webhooks/deals",
               "/webhooks/contacts", "/", "/nope", "/p.gif/", "/collect/../identify", "/%ff", "/webhooks"]


def test_other_endpoints_and_methods_fuzz(topics: Settings) -> None:
    """Snippet, health, metrics with any query, wrong methods and unknown paths: no 5xx, nothing written."""
    with collector(topics.model_copy(update={"max_body_bytes": LIMIT})) as server, \
            httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        statuses: Counter[int] = Counter()

        @FUZZ
        @given(st.sampled_from(OTHER_PATHS), st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
               st.text(st.sampled_from(PRINTABLE), max_size=100), st.binary(max_size=100),
               st.sampled_from([None, "https://example.com", "null", "*"]))
        def request(path: str, method: str, query: str, body: bytes, origin: str | None) -> None:
            if method in ("GET", "HEAD") and path in ("/collect", "/identify", "/webhooks/deals",
                                                      "/webhooks/contacts"):
                pass  # not their method: 405
            elif method in ("GET", "HEAD") and path == "/p.gif":
                method = "PUT"  # a GET of the pixel is an event: test_pixel_fuzz counts those
            headers = {"Origin": origin, "Access-Control-Request-Method": "POST"} if origin else {}
            try:
                response = client.request(method, f"{path}?{query}", content=body or None, headers=headers)
            except httpx.TimeoutException as exc:
                raise AssertionError(f"{method} {path} did not answer within {TIMEOUT_S}s") from exc
            statuses[response.status_code] += 1
            assert 200 <= response.status_code < 500, (method, path, response.status_code)

        request()
        server.flush()
    assert statuses[200] > 0 and sum(n for s, n in statuses.items() if s >= 400) > 0, statuses
    counts = all_topic_counts(topics)
    assert set(counts.values()) == {0}, counts
