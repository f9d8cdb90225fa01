"""The walking skeleton: one pixel hit travels collector -> Kafka -> worker -> sink -> query."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.processes import free_port, leadstream_cmd, run_process, settings_env
from leadstream.testing.waiting import http_ok, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _sources(env: dict[str, str]) -> list[dict[str, object]]:
    proc = subprocess.run(leadstream_cmd("query", "sources", "--format", "json"), env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return []
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    return rows


def test_pixel_hit_reaches_the_sources_report(topics: Settings, tmp_path: Path) -> None:
    """GET /p.gif with utm google/cpc becomes a Paid Search row of `leadstream query sources`."""
    collector_port, query_port = free_port(), free_port()
    env = settings_env(
        topics,
        LEADSTREAM_COLLECTOR_PORT=str(collector_port),
        LEADSTREAM_QUERY_PORT=str(query_port),
        CLICKHOUSE_URL=f"chdb://{tmp_path / 'chdb'}",
        LEADSTREAM_SINK_BATCH_SECONDS="0.2",
    )
    aid = str(uuid.uuid4())
    with (
        run_process(["sink"], env, tmp_path / "sink.log"),
        run_process(["worker"], env | {"LEADSTREAM_DATA_DIR": str(tmp_path / "worker")}, tmp_path / "worker.log"),
        run_process(["collector"], env, tmp_path / "collector.log"),
    ):
        wait_for(http_ok(f"http://127.0.0.1:{collector_port}/healthz"), 60, "the collector")
        wait_for(http_ok(f"http://127.0.0.1:{query_port}/healthz"), 120, "the sink's query API")
        hit = httpx.get(
            f"http://127.0.0.1:{collector_port}/p.gif",
            params={"u": "https://example.com/?utm_source=google&utm_medium=cpc", "aid": aid},
            timeout=10,
        )
        assert hit.status_code == 200
        assert hit.headers["content-type"] == "image/gif"

        rows: list[dict[str, object]] = []

        def report_has_row() -> bool:
            nonlocal rows
            rows = _sources(env)
            return any(r.get("lead_source") == "Paid Search" for r in rows)

        wait_for(report_has_row, 180, "a Paid Search row in the sources report", interval=1.0)
    row = next(r for r in rows if r["lead_source"] == "Paid Search")
    assert set(row) == {"lead_source", "leads", "deals", "won", "lost", "open", "win_rate",
                        "avg_deal_size", "revenue", "pipeline", "median_days_to_close"}
    assert row["leads"] == 0  # an anonymous visit: the source is seen, no contact yet

    # With the sink stopped, the engine directory is free and `query` reads it directly.
    after = _sources(env)
    assert any(r["lead_source"] == "Paid Search" for r in after)
