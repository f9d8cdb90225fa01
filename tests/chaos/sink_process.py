"""A ``leadstream sink`` child process with its own embedded engine, read through its API.

The embedded engine belongs to the sink process, so a scenario reads ClickHouse the way an
analyst does: ``POST /sql`` (paged, the API caps a result at 10,000 rows), ``GET /reports``
and ``GET /healthz``. The same class starts the faulty variant (``faulty_sink.py``), which
is the real command with a crash point patched in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from ground.settings import Settings
from leadstream.stack import settings_env
from leadstream.testing.processes import free_port, leadstream_cmd

__all__ = ["FAULTY_SINK", "SinkProcess"]

FAULTY_SINK = Path(__file__).with_name("faulty_sink.py")
PAGE = 10_000


class SinkProcess:
    """One sink at a time on ``root/chdb``; every (re)start appends to ``root/sink.log``."""

    def __init__(self, settings: Settings, root: Path, **env: str) -> None:
        self.settings = settings
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = settings.clickhouse_database
        root.mkdir(parents=True, exist_ok=True)
        self.env = settings_env(settings, CLICKHOUSE_URL=f"chdb://{root / 'chdb'}",
                                LEADSTREAM_QUERY_PORT=str(self.port), **env)
        self.log_path = root / "sink.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, *fault: str) -> SinkProcess:
        """``leadstream sink``, or the faulty wrapper with ``fault`` options."""
        assert not self.alive(), "one sink at a time on one engine directory"
        self._close_log()
        self._log = self.log_path.open("ab")
        cmd = [sys.executable, str(FAULTY_SINK), *fault] if fault else leadstream_cmd("sink")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the query API answers (the consumer is subscribed by then), or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the sink exited with {self.returncode()}; log: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # readiness poll of the real API
        raise TimeoutError(f"the sink's API did not answer in {timeout:.0f}s; log: {self.log_tail()}")

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self._close_log()
        return code

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """kill -9: no flush, no commit."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout: float = 90.0) -> None:
        """SIGTERM (the sink inserts and commits what it holds), SIGKILL after ``timeout``."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        """Resident memory of the sink process (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    # ---- reading the engine -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/healthz", timeout=30)
        data: dict[str, Any] = response.json()
        return data

    def sql(self, statement: str, parameters: dict[str, Any] | None = None) -> list[list[Any]]:
        """Rows of one SELECT (``{db}`` is the database); at most one page."""
        body = {"sql": statement.replace("{db}", self.database), "parameters": parameters or {}, "limit": PAGE}
        response = httpx.post(f"{self.url}/sql", json=body, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"{statement[:120]}: {response.status_code} {response.text[:500]}")
        rows: list[list[Any]] = response.json()["rows"]
        return rows

    def sql_all(self, statement: str) -> Iterator[list[Any]]:
        """Every row of ``statement`` (which must ORDER BY a unique key), page by page."""
        offset = 0
        while True:
            rows = self.sql(f"{statement} LIMIT {PAGE} OFFSET {offset}")
            yield from rows
            if len(rows) < PAGE:
                return
            offset += PAGE

    def report(self, name: str, params: dict[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}/reports/{name}", params=params or {}, timeout=300)
        if response.status_code != 200:
            raise RuntimeError(f"report {name}: {response.status_code} {response.text[:500]}")
        return response.json()
