"""Backtest of the lead score (not a test): does it rank the leads that go on to win?

Run: ``.venv/bin/python bench/lead_score_backtest.py`` (needs the local Kafka broker,
``leadstream kafka up``; ``--contacts 3000`` is the demo's size). On a time split of the
demo dataset (``leadstream.testing.synthetic``, profile ``demo``):

1. every event before the split time T goes through the real pipeline (a stream worker
   and the sink, on topics and an embedded engine of their own);
2. ``lead-scores`` is computed as of T (``now = T``) at the source level;
3. a scored open lead is a positive when a deal whose primary contact it is (or a contact
   merged into it) is won after T.

Printed: the AUC of the score, next to the baseline measured in the same run: the AUC
of a score from the lead source alone (``q_s · p_s``, no engagement), and the calibration
by decile (leads, mean score, mean ``q_s · p_s`` as the source history's own estimate,
and the observed share won after T). Goal: the score's AUC >= 0.6 and at least the
source-alone AUC minus 0.01 (the engagement multiplier must not make the ranking worse).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import Topics
from leadstream.testing.harness import WorkerProcess, end_offsets, produce, wait_idle
from leadstream.testing.synthetic import DEMO_SIZES, generate
from sinks.clickhouse import connect
from sinks.lead_scores import lead_scores
from sinks.report_params import MAX_TOP, ReportParams
from sinks.service import SinkService
from sinks.sink import SINK_TOPICS


def auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney AUC (ties count one half): P(a random positive outranks a random negative)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda x: x[0])
    rank_sum, i, n = 0.0, 0, len(ranked)
    while i < n:
        j = i
        while j + 1 < n and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += mean_rank * sum(1 for k in range(i, j + 1) if ranked[k][1])
        i = j + 1
    positives = sum(labels)
    negatives = n - positives
    if not positives or not negatives:
        return float("nan")
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _sink_everything(settings: Settings) -> None:
    names = [f"{settings.topic_prefix}{base}" for base in SINK_TOPICS]
    delivered = sum(end_offsets(settings, names).values())
    service = SinkService(settings, connect(settings), serve_api=False).start()
    try:
        deadline = time.monotonic() + 600
        stats = service.sink.stats
        while sum(stats.rows.values()) + stats.dead_letters < delivered:
            if time.monotonic() > deadline:
                raise SystemExit(f"the sink stored {dict(stats.rows)} of {delivered} records in 600 s")
            time.sleep(0.5)
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=DEMO_SIZES["contacts"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--split", type=float, default=0.6, help="T as a share of the dataset's time span")
    args = parser.parse_args()

    scale = args.contacts / DEMO_SIZES["contacts"]
    data = generate(seed=args.seed, contacts=args.contacts, touches=round(DEMO_SIZES["touches"] * scale),
                    deals=round(DEMO_SIZES["deals"] * scale), merges=DEMO_SIZES["merges"], profile="demo")
    arrivals = data.arrival(seed=args.seed, duplicate_rate=0.0, out_of_order=0.0)
    times = [int(r["event_time"]) for _, _, r in arrivals]
    split = min(times) + round(args.split * (max(times) - min(times)))
    history = [a for a in arrivals if int(a[2]["event_time"]) < split]

    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="leadstream-backtest-"))
    settings = Settings(LEADSTREAM_TOPIC_PREFIX=f"bt{tag}-", LEADSTREAM_APP_ID=f"bt{tag}",
                        LEADSTREAM_DATA_DIR=str(work / "data"), CLICKHOUSE_URL=f"chdb://{work / 'chdb'}",
                        LEADSTREAM_ID_SECRET="backtest-secret")
    create_topics(settings)
    try:
        print(f"backtest: {len(history)} of {len(arrivals)} events before the split "
              f"({time.strftime('%Y-%m-%d', time.gmtime(split / 1000))}) through the worker and the sink ...")
        produce(settings, history)
        worker = WorkerProcess(settings, work / "worker", "0").start()
        try:
            worker.wait_ready()
            wait_idle(settings, timeout=900, workers=[worker])
        finally:
            worker.stop()
        _sink_everything(settings)
        db = connect(settings)
        try:
            scored = lead_scores(db, ReportParams(by="source", top=MAX_TOP), now_ms=split,
                                 half_life_days=settings.engagement_half_life_days)
        finally:
            db.close()
    finally:
        delete_topics(settings, Topics(settings.topic_prefix).all())

    merged_into = {c["contact_id"]: c["merged_into"] for c in data.contact_changes
                   if c["change"] == "merge" and c.get("merged_into")}

    def canonical(contact: str) -> str:
        seen = set()
        while contact in merged_into and contact not in seen:
            seen.add(contact)
            contact = merged_into[contact]
        return contact

    winners = {canonical(str(d["primary_contact_id"])) for d in data.deal_changes
               if d["change"] == "won" and int(d["event_time"]) >= split and d.get("primary_contact_id")}
    labels = [r["contact_id"] in winners for r in scored]
    score_auc = auc([r["score"] for r in scored], labels)
    source_auc = auc([r["q_s"] * r["p_s"] for r in scored], labels)

    print(f"\n{len(scored)} open leads scored as of the split, {sum(labels)} of them won a deal after it\n")
    print(f"{'decile':>6}  {'leads':>5}  {'mean score':>10}  {'mean q·p':>8}  {'won after T':>11}")
    ordered = sorted(zip(scored, labels, strict=True), key=lambda x: -x[0]["score"])
    for d in range(10):
        part = ordered[d * len(ordered) // 10:(d + 1) * len(ordered) // 10]
        if not part:
            continue
        mean_score = sum(r["score"] for r, _ in part) / len(part)
        mean_qp = sum(r["q_s"] * r["p_s"] for r, _ in part) / len(part)
        won = sum(1 for _, y in part if y) / len(part)
        print(f"{d + 1:>6}  {len(part):>5}  {mean_score:>10.1f}  {mean_qp:>8.3f}  {won:>11.1%}")
    goal = score_auc >= 0.6 and score_auc >= source_auc - 0.01
    print(f"\nAUC of the lead score: {score_auc:.3f}   baseline (lead source alone, q_s·p_s): {source_auc:.3f}   "
          f"goal: >= 0.6 and >= baseline - 0.01   {'MEETS' if goal else 'MISSES'}")


if __name__ == "__main__":
    main()
