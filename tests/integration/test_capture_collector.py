"""The collector against the real broker: every endpoint, read back from Kafka."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx is what we ship
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from ground.settings import Settings
from ground.topics import Topics
from producers.collector import PIXEL_GIF, create_app, sign
from tests.support.capture import all_topic_counts, count, keyed, read_all

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Using `httpx`")]

SECRET = "test-secret"


@pytest.fixture
def client(topics: Settings) -> Iterator[TestClient]:
    """The collector app in-process (lifespan included) on the test's topics."""
    with TestClient(create_app(topics)) as test_client:
        yield test_client


def flush(client: TestClient) -> None:
    assert client.app.state.events["producer"].flush(30) == 0  # type: ignore[attr-defined]


def signed(body: bytes, *, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {"X-Leadstream-Timestamp": str(ts), "X-Leadstream-Signature": sign(secret, ts, body),
            "Content-Type": "application/json"}


def test_pixel_hit_produces_a_touch_keyed_by_anonymous_id(client: TestClient, topics: Settings) -> None:
    """The walking-skeleton hit (unencoded u) gives a GIF and an Avro Touch with the UTMs of the page."""
    aid = f"a-{uuid.uuid4()}"
    response = client.get(f"/p.gif?u=https://example.com/?utm_source=google&utm_medium=cpc&aid={aid}",
                          headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"})
    assert response.status_code == 200
    assert response.content == PIXEL_GIF and response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    assert response.cookies.get("ls_aid") == aid
    flush(client)
    [msg] = read_all(topics, "touches", at_least=1)
    assert msg.key == aid and msg.name == "Touch"
    touch = msg.record
    assert touch["anonymous_id"] == aid and touch["touch_type"] == "page_view"
    assert touch["utm_source"] == "google" and touch["utm_medium"] == "cpc"
    assert touch["url"] == "https://example.com/?utm_source=google&utm_medium=cpc"
    assert touch["is_bot"] is False and abs(touch["received_at"] - time.time() * 1000) < 60_000
    assert count(topics, "dead-letter") == 0


def test_pixel_event_time_is_immune_to_a_wrong_device_clock(client: TestClient, topics: Settings) -> None:
    """event_time = receive time - (st - ct): a device clock years off does not move the touch."""
    device_created = 1_000_000_000_000  # the device believes it is 2001
    before = int(time.time() * 1000)
    response = client.get("/p.gif", params={"u": "https://example.com/", "aid": "clock", "t": "ad_click",
                                            "ct": device_created, "st": device_created + 4_000,
                                            "gclid": "G-1", "ti": "Pricing"})
    assert response.status_code == 200
    flush(client)
    [msg] = read_all(topics, "touches", at_least=1)
    touch = msg.record
    assert touch["received_at"] - touch["event_time"] == 4_000
    assert touch["received_at"] >= before
    assert touch["touch_type"] == "ad_click" and touch["gclid"] == "G-1" and touch["page_title"] == "Pricing"


def test_invalid_pixel_answers_400_gif_and_dead_letters(client: TestClient, topics: Settings) -> None:
    """A pixel with a bad event id is a 400 (still an image) and one dead letter, emails redacted."""
    response = client.get("/p.gif", params={"u": "https://example.com/?e=jo@acme.com", "aid": "x",
                                            "eid": "not-a-uuid"})
    assert response.status_code == 400 and response.content == PIXEL_GIF
    flush(client)
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "invalid_event_id" and dead.record["stage"] == "collector"
    assert dead.record["origin"] == "collector:/p.gif" and b"eid=not-a-uuid" in dead.record["payload"]
    assert b"acme" not in dead.record["payload"] and b"REDACTED" in dead.record["payload"]
    assert count(topics, "touches") == 0


def test_beacon_batch(client: TestClient, topics: Settings) -> None:
    """A batch of five events: five touches, batch-level anonymous id applied, event ids kept."""
    ids = [str(uuid.uuid4()) for _ in range(5)]
    body = {"anonymous_id": "beacon-1", "events": [
        {"event_id": ids[i], "type": "page_view", "url": f"https://example.com/p{i}?utm_source=newsletter",
         "title": f"Page {i}", "event_time": f"2025-06-01T10:00:0{i}Z", "properties": {"n": i}}
        for i in range(5)]}
    response = client.post("/collect", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.json() == {"accepted": 5}
    flush(client)
    touches = read_all(topics, "touches", at_least=5)
    assert sorted(m.record["event_id"] for m in touches) == sorted(ids)
    assert {m.key for m in touches} == {"beacon-1"}
    assert len({m.partition for m in touches}) == 1
    first = next(m.record for m in touches if m.record["event_id"] == ids[0])
    assert first["event_time"] == 1_748_772_000_000 and first["properties"] == {"n": "0"}
    assert first["utm_source"] == "newsletter"


def test_beacon_with_one_bad_event(client: TestClient, topics: Settings) -> None:
    """Valid events of a batch are kept, the bad one is a 400 entry and a dead letter."""
    body = [{"anonymous_id": "b2", "url": "https://example.com/"},
            {"anonymous_id": "b2", "url": "ftp://nope"},
            {"anonymous_id": "b2", "type": "webinar_attended"}]
    response = client.post("/collect", json=body)
    assert response.status_code == 400
    assert response.json()["accepted"] == 2
    assert [r["index"] for r in response.json()["rejected"]] == [1]
    flush(client)
    assert count(topics, "touches") == 2
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "invalid_url" and b"ftp://nope" in dead.record["payload"]


def test_identify_hashes_the_email(client: TestClient, topics: Settings) -> None:
    """Identify with an email: contact id derived from the hash, the plain email nowhere on Kafka."""
    email = "Jane.Doe@Example.com "
    response = client.post("/identify", json={"anonymous_id": "id-1", "email": email,
                                              "traits": {"plan": "pro", "note": "mail jane.doe@example.com"},
                                              "source": "demo-form"})
    assert response.status_code == 200
    flush(client)
    [msg] = read_all(topics, "identities", at_least=1)
    digest = keyed("jane.doe@example.com")
    assert digest != hashlib.sha256(b"jane.doe@example.com").hexdigest()  # not reversible from a list
    assert msg.key == "id-1"
    assert msg.record["email_sha256"] == digest
    assert msg.record["contact_id"] == "email:" + digest[:32]
    assert msg.record["source_system"] == "demo-form" and msg.record["traits"]["plan"] == "pro"
    assert b"jane.doe@example.com" not in msg.value.lower()


def test_identify_without_contact_or_email_is_rejected(client: TestClient, topics: Settings) -> None:
    """An identify naming nobody is a 400 and a dead letter, and produces no Identify."""
    response = client.post("/identify", json={"anonymous_id": "id-2", "traits": {}})
    assert response.status_code == 400
    flush(client)
    assert count(topics, "identities") == 0
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "missing_field"


def test_an_email_without_an_id_secret_is_refused_by_name(topics: Settings) -> None:
    """No LEADSTREAM_ID_SECRET: an identify with an email is a 400 naming it, and a dead letter without it."""
    settings = topics.model_copy(update={"id_secret": None})
    with TestClient(create_app(settings)) as client:
        response = client.post("/identify", json={"anonymous_id": "id-3", "email": "jo@acme.com"})
        assert response.status_code == 400 and response.json()["rejected"][0]["reason"] == "id_secret_missing"
        assert client.post("/identify", json={"anonymous_id": "id-4", "contact_id": "C-4"}).status_code == 200
        flush(client)
    [identify] = read_all(topics, "identities", at_least=1)
    assert identify.record["contact_id"] == "C-4"
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "id_secret_missing" and b"jo@acme.com" not in dead.record["payload"]


def _deal(**extra: object) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "event_time": "2025-05-02T09:30:00+02:00", "deal_id": "D-42",
            "change": "won", "stage": "Closed Won", "amount": "12500.50", "currency": "eur", "owner": "Ana",
            "primary_contact_id": "C-1", "contact_ids": ["C-2"], "pipeline": "new-business", "version": 3,
            **extra}


def test_deal_webhook_with_good_signature(client: TestClient, topics: Settings) -> None:
    """A signed deal change is accepted and lands on deals keyed by deal id."""
    body = json.dumps(_deal()).encode()
    response = client.post("/webhooks/deals", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    flush(client)
    [msg] = read_all(topics, "deals", at_least=1)
    deal = msg.record
    assert msg.key == "D-42"
    assert deal["change"] == "won" and deal["amount"] == 12500.5 and deal["currency"] == "EUR"
    assert deal["contact_ids"] == ["C-1", "C-2"] and deal["primary_contact_id"] == "C-1"
    assert deal["event_time"] == 1_746_171_000_000 and deal["version"] == 3


@pytest.mark.parametrize("case", ["missing", "wrong", "stale", "future", "other-body"])
def test_deal_webhook_bad_signature_is_401_and_produces_nothing(
        client: TestClient, topics: Settings, case: str) -> None:
    """Missing, wrong, stale (or far-future) signatures: 401, nothing on any topic, counted."""
    body = json.dumps(_deal()).encode()
    headers = {"Content-Type": "application/json"}
    if case == "wrong":
        headers = signed(body, secret="not-the-secret")
    elif case == "stale":
        headers = signed(body, ts=int(time.time()) - 301)
    elif case == "future":
        headers = signed(body, ts=int(time.time()) + 301)
    elif case == "other-body":
        headers = signed(body.replace(b"12500.50", b"99999.00"))
    response = client.post("/webhooks/deals", content=body, headers=headers)
    assert response.status_code == 401
    flush(client)
    counts = all_topic_counts(topics)
    assert len(counts) == len(Topics().all()) and set(counts.values()) == {0}, counts
    metrics = client.get("/metrics").text
    assert 'leadstream_rejected_total{reason="signature_' in metrics


def test_webhooks_disabled_without_secret(topics: Settings) -> None:
    """Without LEADSTREAM_WEBHOOK_SECRET the webhooks answer 503 and say why."""
    settings = topics.model_copy(update={"webhook_secret": None})
    with TestClient(create_app(settings)) as client:
        response = client.post("/webhooks/deals", content=b"{}")
    assert response.status_code == 503
    assert "LEADSTREAM_WEBHOOK_SECRET" in response.json()["detail"]


def test_contact_webhook(client: TestClient, topics: Settings) -> None:
    """Created (with contact source and lifecycle stage) and merge changes land on contacts."""
    body = json.dumps({"events": [
        {"event_time": 1_746_000_000_000, "contact_id": "C-7", "change": "created",
         "contact_source": "Ana Contacts", "owner": "Ana", "lifecycle_stage": "MQL", "email": "x@y.io"},
        {"event_time": 1_746_000_100_000, "contact_id": "C-8", "change": "merge", "merged_into": "C-7"},
    ]}).encode()
    response = client.post("/webhooks/contacts", content=body, headers=signed(body))
    assert response.status_code == 200 and response.json() == {"accepted": 2}
    flush(client)
    changes = {m.key: m.record for m in read_all(topics, "contacts", at_least=2)}
    assert changes["C-7"]["contact_source"] == "Ana Contacts" and changes["C-7"]["lifecycle_stage"] == "mql"
    assert changes["C-7"]["email_sha256"] == keyed("x@y.io")
    assert changes["C-8"]["change"] == "merge" and changes["C-8"]["merged_into"] == "C-7"


def test_signed_but_invalid_webhook_is_dead_lettered(client: TestClient, topics: Settings) -> None:
    """An authenticated deal change with an unknown change type: 400 and a dead letter."""
    body = json.dumps(_deal(change="exploded")).encode()
    response = client.post("/webhooks/deals", content=body, headers=signed(body))
    assert response.status_code == 400
    flush(client)
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "invalid_change" and dead.record["stage"] == "webhook"
    assert count(topics, "deals") == 0


def test_oversized_body_is_413_and_dead_lettered(topics: Settings) -> None:
    """A beacon over LEADSTREAM_MAX_BODY_BYTES: 413, and a dead letter with the bounded head."""
    settings = topics.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(settings)) as client:
        response = client.post("/collect", content=b"[" + b" " * 5000 + b"]")
        assert response.status_code == 413
        flush(client)
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["reason"] == "body_too_large"


@pytest.mark.parametrize("policy", ["flag", "drop"])
def test_bots_are_flagged_or_dropped(topics: Settings, policy: str) -> None:
    """A crawler's hit is produced with is_bot=true (flag) or not at all (drop); never an error."""
    settings = topics.model_copy(update={"bot_policy": policy})
    with TestClient(create_app(settings)) as client:
        response = client.get("/p.gif", params={"u": "https://example.com/", "aid": "bot"},
                              headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
        assert response.status_code == 200
        flush(client)
    touches = read_all(topics, "touches", at_least=1 if policy == "flag" else 0)
    if policy == "flag":
        assert [m.record["is_bot"] for m in touches] == [True]
    else:
        assert touches == []
    assert count(topics, "dead-letter") == 0


def test_cors_snippet_health_and_metrics(client: TestClient) -> None:
    """Preflights are answered, the snippet is served, /healthz and /metrics report."""
    preflight = client.options("/collect", headers={"Origin": "https://www.example.com",
                                                    "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://www.example.com")
    js = client.get("/js/leadstream.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert b"sendBeacon" in js.content and b"identify" in js.content
    assert client.get("/healthz").json()["status"] == "ok"
    client.get("/p.gif", params={"u": "https://example.com/", "aid": "m"})
    flush(client)
    metrics = client.get("/metrics").text
    assert 'leadstream_collector_requests_total{endpoint="pixel",status="200"} 1.0' in metrics
    assert "leadstream_produce_latency_seconds_count 1.0" in metrics
