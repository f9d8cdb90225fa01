"""Property tests of the collector against the real broker: no input gets a 5xx.

Arbitrary query strings and JSON bodies are thrown at the pixel, the beacon and the
identify endpoint. Every answer must be 2xx or 4xx, and the topics must then hold
exactly what the answers promised: one touch/identify per accepted event, one dead
letter per rejected one (per rejected event of a batch).
"""

from __future__ import annotations

import json
import warnings
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ground.settings import Settings
from producers.collector import create_app
from tests.support.capture import count

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx is what we ship
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PIXEL_KEYS = ["u", "r", "aid", "t", "eid", "ti", "cid", "ct", "st", "utm_source", "utm_medium", "gclid", "zz"]
FIELD_KEYS = ["event_id", "event_time", "anonymous_id", "contact_id", "type", "url", "referrer", "title",
              "email", "traits", "properties", "created_at", "sent_at", "utm_campaign", "source"]
ANY_TEXT = st.text(max_size=40)
PLAUSIBLE = st.one_of(
    ANY_TEXT,
    st.sampled_from(["https://example.com/?utm_source=x", "page_view", "ad_click", "nope", "a@b.co",
                     "2025-01-01T00:00:00Z", "1735689600000", "6f1c7a8e-0000-4000-8000-000000000001", "",
                     "http://[::1", "javascript:alert(1)", "%40%", "\x00"]),
    st.integers(-(2**70), 2**70).map(str),
)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), ANY_TEXT, PLAUSIBLE)
JSON_VALUE = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(ANY_TEXT, inner, max_size=3)), max_leaves=8)
EVENT = st.dictionaries(st.sampled_from(FIELD_KEYS), st.one_of(PLAUSIBLE, JSON_VALUE), max_size=8)
BODY = st.one_of(EVENT, st.lists(EVENT, max_size=4), st.fixed_dictionaries({"events": st.lists(EVENT, max_size=4)}),
                 JSON_VALUE)
QUERY = st.one_of(
    st.lists(st.tuples(st.sampled_from(PIXEL_KEYS), PLAUSIBLE), max_size=8).map(urlencode),
    # Raw, unencoded, possibly malformed percent escapes: whatever a client can put on the wire.
    st.text(st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) != "#"]), max_size=80),
)


class Ledger:
    """What the answers promised: events accepted and dead letters written."""

    def __init__(self) -> None:
        self.accepted = {"touches": 0, "identities": 0}
        self.dead = 0

    def record(self, topic: str, status: int, answer: Any) -> None:
        assert status < 500, f"{status}: {answer}"
        if isinstance(answer, dict) and "accepted" in answer:
            self.accepted[topic] += answer["accepted"]
            self.dead += len(answer.get("rejected", [])) or (1 if status >= 400 else 0)
        elif status >= 400:
            self.dead += 1
        else:
            self.accepted[topic] += 1


def test_arbitrary_input_never_5xx_and_every_rejection_is_dead_lettered(topics: Settings) -> None:
    """No query string or JSON body yields a 5xx; 4xx answers and dead letters match one to one."""
    ledger = Ledger()
    with TestClient(create_app(topics)) as client:

        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(QUERY)
        @example("u=https%3A%2F%2Fexample.com%2F%3Futm_source%3Dx&aid=a1")  # always one valid hit
        @example("t=nope")  # and one invalid
        def pixel(query: str) -> None:
            response = client.get("/p.gif?" + query, headers={"User-Agent": "Mozilla/5.0 Firefox/130"})
            ledger.record("touches", response.status_code, None)
            assert response.headers["content-type"] == "image/gif"
            assert (response.status_code == 200) or (400 <= response.status_code < 500)

        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(BODY, st.sampled_from(["/collect", "/identify"]))
        @example({"anonymous_id": "a1", "url": "https://example.com/"}, "/collect")
        @example({"anonymous_id": "a1", "contact_id": "C-1"}, "/identify")
        def json_body(body: Any, path: str) -> None:
            response = client.post(path, content=json.dumps(body), headers={"User-Agent": "Mozilla/5.0"})
            topic = "touches" if path == "/collect" else "identities"
            ledger.record(topic, response.status_code, response.json())

        @settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(st.binary(max_size=100))
        def raw_body(body: bytes) -> None:
            response = client.post("/collect", content=body)
            ledger.record("touches", response.status_code, response.json())

        pixel()
        json_body()
        raw_body()
        assert client.app.state.events["producer"].flush(60) == 0  # type: ignore[attr-defined]
    # both paths were exercised (the explicit examples guarantee it)
    assert ledger.dead > 0 and ledger.accepted["touches"] > 0 and ledger.accepted["identities"] > 0
    assert count(topics, "touches") == ledger.accepted["touches"]
    assert count(topics, "identities") == ledger.accepted["identities"]
    assert count(topics, "dead-letter") == ledger.dead
