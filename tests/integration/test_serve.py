"""``leadstream serve``: a supervised deployment survives ``kill -9`` of its consumers.

The whole stack runs as one ``leadstream serve`` child of the test, on the real broker
and the embedded engine. The test kills the worker and the sink together, three times,
while events are posted, and checks that the supervisor restarts both at once every time,
that every accepted touch reaches ClickHouse exactly once, and that SIGTERM stops every
process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ground.settings import Settings
from leadstream.commands.serve import status_file
from leadstream.testing.processes import free_port, run_process, settings_env
from leadstream.testing.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 3
TOUCHES_PER_ROUND = 40


def _status(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _all_running(path: Path, restarts: int = 0) -> bool:
    current = _status(path)
    return current is not None and all(
        p["state"] == "running" and p["restarts"] >= (restarts if p["name"] != "collector" else 0)
        for p in current["processes"])


def _pids(path: Path, *names: str) -> dict[str, int]:
    current = _status(path)
    assert current is not None
    return {p["name"]: p["pid"] for p in current["processes"] if p["name"] in names}


def _post_touches(collector: str, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    events = [{"event_id": i, "type": "page_view", "anonymous_id": f"a-{i[:8]}",
               "url": "https://example.com/?utm_source=google&utm_medium=cpc"} for i in ids]
    response = httpx.post(f"{collector}/collect", json={"events": events}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": n}
    return ids


def _distinct_touches(query: str, database: str) -> int:
    try:
        response = httpx.post(f"{query}/sql", json={"sql": f"SELECT uniqExact(event_id) FROM {database}.touches"},
                              timeout=10)
    except httpx.HTTPError:
        return -1
    if response.status_code != 200:
        return -1
    return int(response.json()["rows"][0][0])


def test_serve_restarts_worker_and_sink_killed_together(topics: Settings, tmp_path: Path) -> None:
    """kill -9 of worker and sink at once, 3 times: both come back, no touch lost or doubled."""
    settings = topics
    collector_port, query_port = free_port(), free_port()
    env = settings_env(settings, LEADSTREAM_COLLECTOR_PORT=str(collector_port),
                       LEADSTREAM_QUERY_PORT=str(query_port), LEADSTREAM_SINK_BATCH_SECONDS="0.1")
    collector, query = f"http://127.0.0.1:{collector_port}", f"http://127.0.0.1:{query_port}"
    status = status_file(settings)
    db = settings.clickhouse_database
    with run_process(["serve", "--stop-grace", "30"], env, tmp_path / "serve.log") as serve:
        wait_for(lambda: _all_running(status), 120, "every serve process to run")
        wait_for(lambda: _distinct_touches(query, db) >= 0, 180, "the sink's query API")
        sent = _post_touches(collector, TOUCHES_PER_ROUND)
        for round_ in range(1, ROUNDS + 1):
            victims = _pids(status, "worker-0", "sink")
            for pid in victims.values():
                os.kill(pid, signal.SIGKILL)
            sent += _post_touches(collector, TOUCHES_PER_ROUND)  # the collector keeps accepting
            wait_for(lambda r=round_: _all_running(status, restarts=r), 120, f"restart {round_} of worker and sink")
            restarted = _pids(status, "worker-0", "sink")
            assert all(restarted[name] != pid for name, pid in victims.items())
        wait_for(lambda: _distinct_touches(query, db) == len(sent), 240, f"{len(sent)} touches in ClickHouse")
        rows = httpx.post(f"{query}/sql", json={"sql": f"SELECT count() FROM {db}.touches_dedup"}, timeout=10).json()
        assert int(rows["rows"][0][0]) == len(sent)
        last = _pids(status, "sink", "worker-0", "collector")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=120) == 0
    for pid in last.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_status_without_serve_says_so(settings: Settings) -> None:
    """`leadstream status` with no serve running exits 1 with a sentence, not a traceback."""
    from leadstream.testing.processes import leadstream_cmd

    proc = subprocess.run(leadstream_cmd("status"), env=settings_env(settings), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "no `leadstream serve` is running" in proc.stderr
