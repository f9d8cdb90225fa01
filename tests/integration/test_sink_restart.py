"""Restart after a crash: ``leadstream sink`` killed with SIGKILL and started again at once.

The sink runs as a child process (the console script) on its own embedded engine
directory and the real broker. A killed engine keeps its directory locked until the
kernel has torn the process down, a moment after the kill, so a sink started at once
may find the lock still held: it must wait for it, become ready, and serve every row
written before, three times in a row. The control: while a live sink holds the
directory, a second one waits for its (short) bound and exits with a clear error, and
one with the default bound takes over when the holder is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.processes import free_port, leadstream_cmd, settings_env
from leadstream.testing.waiting import http_ok, wait_for
from tests.integration.sink_feed import enriched_feed, generate_world
from tests.integration.sink_support import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY_SECONDS = 180.0
LOCKED = "is locked by process"


def _env(settings: Settings, engine: Path, port: int, **extra: str) -> dict[str, str]:
    return settings_env(settings, CLICKHOUSE_URL=f"chdb://{engine}", LEADSTREAM_QUERY_PORT=str(port),
                        LEADSTREAM_SINK_BATCH_SECONDS="0.2", **extra)


class SinkProcess:
    """One ``leadstream sink`` child: its process, log file and query API."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.base = f"http://127.0.0.1:{env['LEADSTREAM_QUERY_PORT']}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(leadstream_cmd("sink"), env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"the sink exited with {self.proc.returncode}:\n{self.text()[-3000:]}"
            return http_ok(f"{self.base}/healthz")()

        wait_for(ready, READY_SECONDS, f"the sink's query API ({self.log.name})")

    def kill(self) -> None:
        """SIGKILL, and nothing more: the caller decides whether to wait for the process to go."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def reap(self) -> None:
        self.kill()
        self.proc.wait(timeout=60)


@contextmanager
def sinks() -> Iterator[list[SinkProcess]]:
    """Every sink started in the block is killed and reaped when it ends."""
    started: list[SinkProcess] = []
    try:
        yield started
    finally:
        for sink in started:
            sink.reap()


def _stored(sink: SinkProcess, database: str) -> dict[str, Any]:
    """What the engine holds, read through the sink's own query API: distinct keys per table and a report."""
    sql = (f"SELECT (SELECT uniqExact(event_id) FROM {database}.touches) AS touches, "
           f"(SELECT uniqExact(contact_id, version) FROM {database}.contact_versions) AS contact_versions, "
           f"(SELECT uniqExact(deal_id, stamp_version) FROM {database}.deal_versions) AS deal_versions, "
           f"(SELECT uniqExact(anonymous_id, version) FROM {database}.identity_links) AS identity_links")
    answer = httpx.post(f"{sink.base}/sql", json={"sql": sql}, timeout=60).json()
    counts = dict(zip(answer["columns"], answer["rows"][0], strict=True))
    sources = httpx.get(f"{sink.base}/reports/sources", params={"by": "source"}, timeout=60).json()
    return {"counts": counts, "sources": sources}


def _wait_stored(sink: SinkProcess, per_table: dict[str, int]) -> None:
    def all_stored() -> bool:
        rows = httpx.get(f"{sink.base}/healthz", timeout=10).json()["sink"]["rows"]
        return all(rows.get(table, 0) >= n for table, n in per_table.items())

    wait_for(all_stored, READY_SECONDS, "the sink to store the feed")


def test_killed_sink_restarted_at_once_is_ready_with_its_data(topics: Settings, tmp_path: Path) -> None:
    """kill -9, restart at once, three times: each restart becomes ready and serves the same data."""
    engine, port = tmp_path / "chdb", free_port()
    env = _env(topics, engine, port)
    per_table = produce(topics, enriched_feed(generate_world(seed=5, n_contacts=40, n_deals=20)))
    with sinks() as started:
        first = SinkProcess(env, tmp_path / "sink-0.log")
        started.append(first)
        first.wait_ready()
        _wait_stored(first, per_table)
        before = _stored(first, topics.clickhouse_database)
        assert all(before["counts"][table] > 0 for table in per_table), before["counts"]
        assert before["sources"], "the sources report has rows"

        current, waited = first, 0
        for round_ in range(1, 4):
            killed = time.monotonic()
            current.kill()
            current = SinkProcess(env, tmp_path / f"sink-{round_}.log")  # at once: no wait for the old one
            started.append(current)
            current.wait_ready()
            waited += LOCKED in current.text()
            print(f"restart {round_}: ready {time.monotonic() - killed:.1f}s after the kill"
                  f"{' (waited for the lock)' if LOCKED in current.text() else ''}")
            assert _stored(current, topics.clickhouse_database) == before, f"data after restart {round_}"
        print(f"{waited} of 3 restarts found the engine still locked by the killed sink")


def test_live_sinks_engine_is_waited_for_then_refused(topics: Settings, tmp_path: Path) -> None:
    """A second sink waits for a live one's directory, then exits clearly; with the default bound it outlasts a kill."""
    engine = tmp_path / "chdb"
    per_table = produce(topics, enriched_feed(generate_world(seed=6, n_contacts=40, n_deals=10)))
    with sinks() as started:
        holder = SinkProcess(_env(topics, engine, free_port()), tmp_path / "holder.log")
        started.append(holder)
        holder.wait_ready()
        _wait_stored(holder, per_table)
        before = _stored(holder, topics.clickhouse_database)

        bound = 3
        refused_env = _env(topics, engine, free_port(), LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS=str(bound))
        began = time.monotonic()
        refused = SinkProcess(refused_env, tmp_path / "refused.log")
        started.append(refused)
        code = refused.proc.wait(timeout=120)
        took = time.monotonic() - began
        log = refused.text()
        print(f"refused after {took:.1f}s, exit {code}:\n{log}")
        assert code != 0
        assert f"{LOCKED} {holder.proc.pid}" in log and f"waiting up to {bound}s" in log
        assert f"still locked by process {holder.proc.pid} after {bound}s" in log
        assert "LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS" in log
        assert took >= bound
        assert http_ok(f"{holder.base}/healthz")(), "the live sink is undisturbed"

        successor = SinkProcess(_env(topics, engine, free_port()), tmp_path / "successor.log")
        started.append(successor)
        wait_for(lambda: LOCKED in successor.text(), READY_SECONDS, "the successor to wait for the lock")
        assert successor.proc.poll() is None
        holder.kill()
        successor.wait_ready()
        assert _stored(successor, topics.clickhouse_database) == before
