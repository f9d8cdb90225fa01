"""The stream worker against the batch oracle: two worker processes, four partitions.

A seeded dataset (2,000 contacts, 20,000 touches, 300 deals, merges, identifies before
and after the touches they explain) arrives with 25% of the events out of order and 5%
duplicated. When the workers are idle, the latest contact and deal versions they
emitted must equal a plain batch recomputation over the same raw events.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ground.settings import Settings
from leadstream.testing.harness import (
    WorkerProcess,
    delete_worker_topics,
    end_offsets,
    group_lag,
    produce,
    read_latest,
    wait_idle,
)
from sinks.clickhouse import connect
from sinks.report_params import MODELS, ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from sinks.sink import SINK_TOPICS
from streams.taxonomy import load_taxonomy
from tests.oracle import batch as oracle
from tests.oracle.generator import Arrival, arrival_stats, generate
from tests.oracle.reports import Reports, diff

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> Iterator[None]:
    """Leave the shared broker as we found it: the test's topics and its changelogs go."""
    yield
    delete_worker_topics(topics)

CONTACT_FIELDS = ("lead_channel", "lead_source", "lead_detail", "first_touch_event_id", "contact_source",
                  "lead_method")
DEAL_FIELDS = ("lead_channel", "lead_source", "lead_detail", "contact_source", "first_touch_time")


@dataclass
class Comparison:
    contacts: int = 0
    deals: int = 0
    mismatches: list[str] = field(default_factory=list)


def _arrivals() -> list[Arrival]:
    dataset = generate(7, contacts=2000, touches=20000, deals=300, merges=20)
    arrivals = dataset.arrival(seed=11, duplicate_rate=0.05, out_of_order=0.25)
    duplicates, late = arrival_stats(arrivals)
    assert duplicates >= 0.04 * len(arrivals) and late >= 0.15 * len(arrivals)
    _assert_identifies_before_and_after(arrivals)
    return arrivals


def _assert_identifies_before_and_after(arrivals: list[Arrival]) -> None:
    """The data must exercise both: identifies earlier and later than their anon's touches."""
    touch_times: dict[str, list[int]] = {}
    for topic, _, record in arrivals:
        if topic == "touches" and record["anonymous_id"]:
            touch_times.setdefault(record["anonymous_id"], []).append(record["event_time"])
    before = after = 0
    for topic, _, record in arrivals:
        times = touch_times.get(record["anonymous_id"], []) if topic == "identities" else []
        before += any(t > record["event_time"] for t in times)
        after += any(t < record["event_time"] for t in times)
    assert before > 0 and after > 0


def _classifier(settings: Settings) -> oracle.Classify:
    taxonomy = load_taxonomy(settings.taxonomy_path, settings.site_domain_list)

    def classify(touch: dict[str, Any]) -> tuple[str, str, str]:
        c = taxonomy.classify(touch)
        return (c.channel, c.source, c.detail)

    return classify


def _compare(settings: Settings, arrivals: list[Arrival]) -> Comparison:
    classify = _classifier(settings)
    expected = oracle.Batch(arrivals, classify)
    got_contacts = read_latest(settings, "enriched-contacts", "version")
    got_deals = read_latest(settings, "enriched-deals", "stamp_version")
    result = Comparison()
    exp_contacts = expected.contacts()
    for contact_id, exp in exp_contacts.items():
        result.contacts += 1
        got = got_contacts.get(contact_id)
        if got is None or got["merged_into"] is not None:
            result.mismatches.append(f"contact {contact_id}: {'missing' if got is None else 'not live'}")
            continue
        for name in CONTACT_FIELDS:
            if got[name] != getattr(exp, name):
                result.mismatches.append(f"contact {contact_id} {name}: {got[name]!r} != {getattr(exp, name)!r}")
    live = {c for c, v in got_contacts.items() if v["merged_into"] is None}
    result.mismatches += [f"contact {c}: live but unknown to the oracle" for c in sorted(live - set(exp_contacts))]
    for deal_id, exp_deal in expected.deals().items():
        result.deals += 1
        got = got_deals.get(deal_id)
        if got is None:
            result.mismatches.append(f"deal {deal_id}: missing")
            continue
        for name in (*DEAL_FIELDS, "status"):
            if got[name] != getattr(exp_deal, name):
                result.mismatches.append(f"deal {deal_id} {name}: {got[name]!r} != {getattr(exp_deal, name)!r}")
    print(f"oracle: compared {result.contacts} contacts x {len(CONTACT_FIELDS)} fields, "
          f"{result.deals} deals x {len(DEAL_FIELDS) + 1} fields, {len(result.mismatches)} mismatches")
    return result


def _compare_reports(settings: Settings, arrivals: list[Arrival]) -> list[str]:
    """Sink what the workers emitted, then every report must equal the plain-Python oracle.

    This closes the loop of the whole pipeline: raw events -> workers -> enriched topics
    -> sink -> ClickHouse -> reports, against a recomputation over the raw events alone.
    """
    topic_names = [f"{settings.topic_prefix}{base}" for base in SINK_TOPICS]
    delivered = sum(end_offsets(settings, topic_names).values())
    db = connect(settings)
    service = SinkService(settings, db, serve_api=False).start()
    try:
        deadline = time.monotonic() + 300
        while sum(service.sink.stats.rows.values()) < delivered:
            assert time.monotonic() < deadline, f"the sink acknowledged {dict(service.sink.stats.rows)} of {delivered}"
            time.sleep(0.2)  # polling the sink's acknowledged row count
    finally:
        service.stop()
    expected = Reports(arrivals, _classifier(settings))
    problems: list[str] = []
    checks = [(f"sources --by {by}", expected.sources(by), "sources", ReportParams(by=by), ["lead_source"], False)
              for by in ("channel", "source", "detail")]
    checks.append(("quarterly", expected.quarterly("channel"), "quarterly", ReportParams(),
                   ["quarter", "lead_source"], False))
    checks.append(("contact-sources", expected.contact_sources(), "contact-sources", ReportParams(),
                   ["contact_source"], False))
    checks += [(f"attribution --model {m}", expected.attribution(m, "channel"), "attribution",
                ReportParams(model=m), ["channel"], True) for m in MODELS]  # type: ignore[arg-type]
    for name, want, report, params, key, zero_missing in checks:
        got = run_report(db, report, params)
        assert isinstance(got, list)
        problems += [f"{name}: {p}" for p in diff(want, got, key=key, zero_missing=zero_missing)]
    db.close()
    print(f"reports: {len(checks)} reports over {delivered} enriched records compared with the oracle, "
          f"{len(problems)} differences")
    return problems


def _dead_letters(settings: Settings) -> int:
    return sum(end_offsets(settings, [f"{settings.topic_prefix}dead-letter"]).values())


def _start(settings: Settings, root: Path) -> list[WorkerProcess]:
    workers = [WorkerProcess(settings, root / f"w{i}", str(i)).start() for i in (0, 1)]
    for w in workers:
        w.wait_ready()
    return workers


def test_two_workers_match_the_batch_oracle(topics: Settings, tmp_path: Path) -> None:
    """Lead source, first touch, contact source, lead method and deal stamps: 0 mismatches;
    sunk into ClickHouse, every report equals the oracle's."""
    settings = topics
    arrivals = _arrivals()
    workers = _start(settings, tmp_path)
    try:
        produce(settings, arrivals)
        waited = wait_idle(settings, timeout=600, workers=workers)
        print(f"workers idle {waited:.1f}s after the last event was produced ({len(arrivals)} events)")
        for w in workers:  # both processes really held partitions of the contact table
            assert list(w.data_dir.glob("streams/*/worker-*/v1/tables/contact-*.db")), w.log_tail()
    finally:
        for w in workers:
            w.stop()
    result = _compare(settings, arrivals)
    assert result.contacts >= 1900 and result.deals == 300
    assert result.mismatches == [], "\n".join(result.mismatches[:30])
    assert _dead_letters(settings) == 0
    problems = _compare_reports(settings, arrivals)
    assert problems == [], "\n".join(problems[:30])


def test_workers_killed_mid_stream_recover_from_changelogs(topics: Settings, tmp_path: Path) -> None:
    """SIGKILL both workers half-way, wipe their RocksDB, restart: still 0 mismatches."""
    settings = topics
    arrivals = _arrivals()
    touches = sum(1 for topic, _, _ in arrivals if topic == "touches")
    produce(settings, arrivals)
    workers = _start(settings, tmp_path)
    enriched = f"{settings.topic_prefix}enriched-touches"
    try:
        deadline = time.monotonic() + 600
        while sum(end_offsets(settings, [enriched]).values()) < 0.4 * touches:
            assert time.monotonic() < deadline, "workers made no progress"
            for w in workers:
                assert w.alive(), w.log_tail()
            time.sleep(0.2)  # polling the output offsets
    finally:
        for w in workers:
            w.kill()
    lag = group_lag(settings)
    print(f"killed both workers with a lag of {lag} events")
    assert lag > 0, "the kill came after the work was done: nothing left to recover"
    for w in workers:  # no local state survives: everything comes back from the changelogs
        shutil.rmtree(w.data_dir / "streams")
    workers = _start(settings, tmp_path)
    try:
        wait_idle(settings, timeout=600, workers=workers)
    finally:
        for w in workers:
            w.stop()
    result = _compare(settings, arrivals)
    assert result.mismatches == [], "\n".join(result.mismatches[:30])
    assert _dead_letters(settings) == 0
