"""Erasure: three subjects erased, the derived state rebuilt, nothing of theirs left, every number exact.

A seeded dataset goes through a worker and a sink. Three subjects are chosen from it
(one with anonymous touches before their first identify, one that absorbed another
contact by a merge, one with a won deal) and erased with ``leadstream erase``; the
worker and the sink are stopped, ``leadstream erase --apply`` clears what was derived,
and both start again: the worker replays the raw topics from offset 0.

Then, read back with clients of this test (not the product's readers): no id of a
subject (contact ids, merged contact ids, anonymous ids) is in any topic (the raw topics,
rewritten without the subjects' events, the enriched and internal topics, the worker's
changelogs), in any ClickHouse table or in the worker's log; the worker's latest
versions and every report equal the oracle computed over the raw events without the
subjects' events (their deals kept, with the documented placeholder for their contact
ids); ``leadstream erase --status`` shows
each request applied by the worker, the sink and the rebuild.

A second test publishes an erasure while the worker is down, with the subject's events
waiting on the raw topics: on its start the worker drops every one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from ground.settings import Settings
from leadstream.rebuild import clear_derived, plan_rebuild
from leadstream.testing.harness import WorkerProcess, delete_worker_topics, end_offsets, produce, wait_idle
from leadstream.testing.processes import collector_process, leadstream_cmd, settings_env
from producers.collector import sign
from schemas.codec import decode
from sinks.clickhouse import connect
from sinks.service import SinkService
from sinks.sink import SINK_TOPICS
from tests.integration.test_stream_oracle import _compare, _compare_reports
from tests.oracle.generator import Arrival, Dataset, generate
from tests.support.capture import ID_SECRET

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

RAW = ("touches", "identities", "contacts", "deals")
KEPT = (*RAW, "dead-letter", "erasures")  # topics the rebuild does not delete (docs/privacy.md)


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> Iterator[None]:
    yield
    delete_worker_topics(topics)


# ---- the subjects, chosen and resolved from the dataset alone --------------------------
def _closure(data: Dataset, contact: str) -> tuple[set[str], set[str]]:
    """(contact ids, anonymous ids) of a subject: the contact, contacts merged into it, their visitors."""
    absorbed: dict[str, set[str]] = {}
    for change in data.contact_changes:
        if change["change"] == "merge" and change.get("merged_into"):
            absorbed.setdefault(change["merged_into"], set()).add(change["contact_id"])
    contacts, todo = set(), [contact]
    while todo:
        c = todo.pop()
        if c not in contacts:
            contacts.add(c)
            todo += absorbed.get(c, ())
    anons = {i["anonymous_id"] for i in data.identifies if i["contact_id"] in contacts}
    return contacts, anons


def _subjects(data: Dataset) -> list[str]:
    merged_away = {c["contact_id"] for c in data.contact_changes if c["change"] == "merge"}
    survivors = [c["merged_into"] for c in data.contact_changes
                 if c["change"] == "merge" and c["merged_into"] not in merged_away]
    winners = [d["primary_contact_id"] for d in data.deal_changes if d["change"] == "won"]
    first_touch = {}
    for t in data.touches:
        if t["anonymous_id"]:
            first_touch[t["anonymous_id"]] = min(first_touch.get(t["anonymous_id"], t["event_time"]), t["event_time"])
    anonymous_first = [i["contact_id"] for i in data.identifies
                       if first_touch.get(i["anonymous_id"], i["event_time"]) < i["event_time"]]
    chosen: list[str] = []
    for candidates in (anonymous_first, survivors, winners):
        pick = next(c for c in candidates if c not in chosen and c not in merged_away
                    and all(c not in _closure(data, o)[0] for o in chosen))
        chosen.append(pick)
    return chosen


def _placeholder(contact_id: str) -> str:
    """The documented replacement of an erased contact id on the deals that stay (docs/privacy.md)."""
    digest = hmac.new(ID_SECRET.encode(), b"placeholder\x00" + contact_id.encode(), hashlib.sha256).hexdigest()
    return "erased:" + digest[:16]


def _without(arrivals: list[Arrival], contacts: set[str], anons: set[str]) -> list[Arrival]:
    """The raw events minus the subjects' ones; their deals kept, contact ids replaced."""
    out: list[Arrival] = []
    for topic, key, raw in arrivals:
        if topic in ("touches", "identities") and (raw.get("anonymous_id") in anons
                                                   or raw.get("contact_id") in contacts):
            continue
        if topic == "contacts" and raw["contact_id"] in contacts:
            continue
        record = {**raw}
        if topic == "deals":
            if record.get("primary_contact_id") in contacts:
                record["primary_contact_id"] = _placeholder(record["primary_contact_id"])
            if record.get("contact_ids"):
                record["contact_ids"] = [_placeholder(c) if c in contacts else c for c in record["contact_ids"]]
        out.append((topic, key, record))
    return out


# ---- reading everything back ----------------------------------------------------------------
def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _payload(raw: bytes | None) -> Any:
    if not raw:
        return None
    if raw[:2] == b"\xc3\x01":  # Avro single-object encoding
        return decode(raw)[1]
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _topic_strings(settings: Settings, names: Iterable[str]) -> tuple[set[str], int]:
    """Every string of every record (keys and values, nested) of ``names``; and how many records."""
    found: set[str] = set()
    ends = {tp: high for tp, high in end_offsets(settings, list(names)).items() if high > 0}
    consumer = Consumer(settings.kafka_consumer_config(f"erasure-test-{time.time_ns()}"))
    read = 0
    try:
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        deadline = time.monotonic() + 120
        while ends:
            assert time.monotonic() < deadline, f"could not read {sorted(ends)[:3]} to the end"
            for msg in consumer.consume(5000, timeout=1.0):
                if msg.error():
                    continue
                read += 1
                found.add((msg.key() or b"").decode("utf-8", "replace"))
                found.update(_strings(_payload(msg.value())))
                tp = (str(msg.topic()), int(msg.partition() or 0))
                if tp in ends and int(msg.offset() or 0) + 1 >= ends[tp]:
                    del ends[tp]
    finally:
        consumer.close()
    return found, read


def _derived_topics(settings: Settings) -> list[str]:
    existing = AdminClient(settings.kafka_common_config()).list_topics(timeout=10).topics
    kept = {settings.topic_prefix + t for t in KEPT}
    return sorted(t for t in existing if t not in kept
                  and (t.startswith(settings.topic_prefix) or t.startswith(f"{settings.stream_app_id}-")))


def _table_strings(settings: Settings) -> tuple[set[str], int]:
    db = connect(settings)
    try:
        tables = [r[0] for r in db.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View'",
            {"db": settings.clickhouse_database})[1]]
        found: set[str] = set()
        rows = 0
        for table in tables:
            _, result = db.query(f"SELECT * FROM {settings.clickhouse_database}.{table}")
            rows += len(result)
            for row in result:
                found.update(_strings(list(row)))
        return found, rows
    finally:
        db.close()


def _sink_all(settings: Settings) -> None:
    """Run the sink until it has stored every record of the enriched topics."""
    names = [f"{settings.topic_prefix}{base}" for base in SINK_TOPICS]
    delivered = sum(end_offsets(settings, names).values())
    service = SinkService(settings, connect(settings), serve_api=False).start()
    try:
        deadline = time.monotonic() + 300
        stats = service.sink.stats
        # every record acknowledged by the engine (the sink's own thread flushes and commits)
        while sum(stats.rows.values()) + stats.erased + stats.dead_letters < delivered:
            assert time.monotonic() < deadline, f"the sink acknowledged {dict(stats.rows)} of {delivered}"
            time.sleep(0.2)  # polling the sink's acknowledged row count
    finally:
        service.stop()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(leadstream_cmd("erase", *args), env=settings_env(settings), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"leadstream erase {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
    return proc


def _run_worker(settings: Settings, root: Path) -> str:
    worker = WorkerProcess(settings, root, "0").start()
    try:
        worker.wait_ready()
        wait_idle(settings, timeout=600, workers=[worker])
    finally:
        worker.stop()
    return worker.log_path.read_text(errors="replace")


def _dataset() -> tuple[Dataset, list[Arrival]]:
    data = generate(23, contacts=800, touches=8000, deals=200, merges=20)
    return data, data.arrival(seed=5, duplicate_rate=0.05, out_of_order=0.25)


def test_erased_subjects_leave_no_trace_and_reports_equal_the_oracle_without_them(
        topics: Settings, tmp_path: Path) -> None:
    settings = topics.model_copy(update={"data_dir": tmp_path / "data"})
    data, arrivals = _dataset()
    subjects = _subjects(data)
    contacts: set[str] = set()
    anons: set[str] = set()
    for s in subjects:
        c, a = _closure(data, s)
        contacts |= c
        anons |= a
    assert len(contacts) > len(subjects) and anons, (contacts, anons)  # a merge and a visitor at least
    produce(settings, arrivals)
    _run_worker(settings, settings.data_dir)
    _sink_all(settings)
    before, _ = _table_strings(settings)
    assert contacts & before and anons & before, "the subjects were never stored: nothing to erase"

    args = [a for s in subjects for a in ("--contact-id", s)]
    requested = _cli(settings, *args).stdout.split()
    assert len(requested) == 2 * len(subjects)
    # what `leadstream erase --apply` runs, in this process: it holds the embedded engine
    clear_derived(settings, plan_rebuild(settings))
    log = _run_worker(settings, settings.data_dir)

    expected = _without(arrivals, contacts, anons)
    result = _compare(settings, expected)
    assert result.contacts > 700 and result.mismatches == [], "\n".join(result.mismatches[:30])
    problems = _compare_reports(settings, expected)  # sinks the rebuilt topics first
    assert problems == [], "\n".join(problems[:30])

    derived = _derived_topics(settings)
    assert any(t.endswith("-changelog") for t in derived) and settings.topic_prefix + "enriched-touches" in derived
    strings, records = _topic_strings(settings, derived)
    leaked = sorted((contacts | anons) & strings)
    print(f"erasure: {len(contacts)} contact ids and {len(anons)} anonymous ids of {len(subjects)} subjects; "
          f"{records} records in {len(derived)} derived topics read back, {len(leaked)} ids found")
    assert records > 1000 and not leaked, leaked[:10]
    raw_strings, raw_records = _topic_strings(settings, [settings.topic_prefix + t for t in RAW])
    print(f"erasure: the raw topics rewritten: {raw_records} records kept of {len(arrivals)}, "
          f"{len((contacts | anons) & raw_strings)} ids found")
    assert raw_records == len(expected) < len(arrivals) and not (contacts | anons) & raw_strings
    table_strings, rows = _table_strings(settings)
    assert rows > 1000 and not (contacts | anons) & table_strings, sorted((contacts | anons) & table_strings)[:10]
    in_log = [i for i in contacts | anons if re.search(rf"(?<![\w:-]){re.escape(i)}(?![\w-])", log)]
    assert not in_log, in_log[:10]

    status = json.loads(_cli(settings, "--status", "--format", "json").stdout)
    assert sorted(r["erasure_id"] for r in status) == sorted(requested[0::2])
    for row in status:
        assert row["worker_at"] and row["sink_at"] and row["rebuilt_at"], row


def test_an_erasure_made_while_the_worker_is_down_applies_before_its_pending_events(
        topics: Settings, tmp_path: Path) -> None:
    settings = topics.model_copy(update={"data_dir": tmp_path / "data"})
    data, arrivals = _dataset()
    subject = _subjects(data)[0]
    contacts, anons = _closure(data, subject)
    produce(settings, arrivals)  # nothing consumes them yet
    _cli(settings, "--contact-id", subject)
    _run_worker(settings, settings.data_dir)
    strings, records = _topic_strings(settings, _derived_topics(settings))
    assert records > 1000 and not (contacts | anons) & strings
    result = _compare(settings, _without(arrivals, contacts, anons))
    assert result.mismatches == [], "\n".join(result.mismatches[:30])
    status = json.loads(_cli(settings, "--status", "--format", "json").stdout)
    assert len(status) == 1 and status[0]["worker_at"] and status[0]["rebuilt_at"] is None, status

    # --apply refuses while a worker runs, then clears (this process never opened the engine)
    worker = WorkerProcess(settings, settings.data_dir, "0").start()
    try:
        worker.wait_ready()
        refused = subprocess.run(leadstream_cmd("erase", "--apply", "--yes"), env=settings_env(settings),
                                 capture_output=True, text=True, timeout=120, check=False)
    finally:
        worker.stop()
    assert refused.returncode == 2 and "stop the stream workers and the sink first" in refused.stderr, refused
    _cli(settings, "--apply", "--yes")
    assert not any(t.endswith("-changelog") for t in _derived_topics(settings))
    raw_strings, raw_records = _topic_strings(settings, [settings.topic_prefix + t for t in RAW])
    assert raw_records == len(_without(arrivals, contacts, anons)) and not (contacts | anons) & raw_strings
    assert not (settings.data_dir / "streams" / settings.stream_app_id).exists()
    status = json.loads(_cli(settings, "--status", "--format", "json").stdout)
    assert status[0]["rebuilt_at"], status


def test_post_erasures_resolves_and_publishes_like_the_cli(topics: Settings, tmp_path: Path) -> None:
    """POST /erasures, signed like the webhooks: the same resolution as the CLI, nothing dead-lettered."""
    settings = topics.model_copy(update={"data_dir": tmp_path / "data"})
    data = generate(31, contacts=150, touches=600, deals=40, merges=8)
    produce(settings, data.arrival(seed=2, duplicate_rate=0.0, out_of_order=0.0))
    survivor = _subjects(data)[1]  # absorbed another contact by a merge
    contacts, anons = _closure(data, survivor)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""

    def post(url: str, body: bytes, *, signed: bool = True) -> httpx.Response:
        ts = int(time.time())
        headers = {"Content-Type": "application/json"}
        if signed:
            headers |= {"X-Leadstream-Timestamp": str(ts), "X-Leadstream-Signature": sign(secret, ts, body)}
        return httpx.post(f"{url}/erasures", content=body, headers=headers, timeout=120)

    dead_before = sum(end_offsets(settings, [settings.topic_prefix + "dead-letter"]).values())
    with collector_process(settings) as url:
        body = json.dumps({"contact_ids": [survivor]}).encode()
        assert post(url, body, signed=False).status_code == 401
        for bad in (b"[]", b"{}", b'{"emails": "a@b.example"}', b'{"contact_ids": [""]}', b"not json",
                    json.dumps({"contact_ids": [f"c{i}" for i in range(101)]}).encode(),
                    b'{"contact_ids": ["c1"], "note": "x"}', b'{"emails": ["no-at-sign"]}'):
            answer = post(url, bad)
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_erasure", (bad, answer.text)
        accepted = post(url, body)
    assert accepted.status_code == 202, accepted.text
    [row] = accepted.json()["erasures"]
    assert row["subject"] == "contact_ids[0]" and survivor not in accepted.text
    assert (row["contact_ids"], row["anonymous_ids"]) == (len(contacts), len(anons)) and len(contacts) > 1
    dead_after = sum(end_offsets(settings, [settings.topic_prefix + "dead-letter"]).values())
    assert dead_after == dead_before, "a refused erasure request was dead-lettered"
    status = json.loads(_cli(settings, "--status", "--format", "json").stdout)
    assert [(s["erasure_id"], s["contacts"], s["anonymous_ids"]) for s in status] == [
        (row["erasure_id"], len(contacts), len(anons))]
