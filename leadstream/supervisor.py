"""A small process supervisor: what ``leadstream serve`` runs a deployment with.

A single-machine deployment is a sink, one or more stream workers and the collector,
each the same console command a user would start by hand. The supervisor starts them
in that order (consumers first, so nothing the collector accepts waits for a reader),
restarts one that exits with an exponential backoff, and on SIGTERM stops them in the
reverse order: the collector first, which flushes every event it accepted to Kafka, then
the workers, which commit, then the sink, which inserts and commits its last batch.
Nothing accepted is lost, because everything accepted is in Kafka before a consumer
stops.

Every second it writes a status file (JSON, see :class:`Status`) that
``leadstream status`` reads; the consumer lag is measured in a background thread so a
slow broker never delays a restart.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Backoff", "ProcessSpec", "Status", "Supervisor", "format_status_line", "read_status"]

log = logging.getLogger("leadstream.serve")


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised child: a name and the ``leadstream`` arguments that start it."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial`` doubling up to ``maximum``; a child that ran for
    ``reset_after`` seconds is considered healthy again and restarts after ``initial``."""

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** max(consecutive_failures - 1, 0)))


@dataclass
class _Child:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    restart_at: float | None = None
    last_exit: int | None = None

    @property
    def state(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return "running"
        return "restarting" if self.restart_at is not None else "stopped"


@dataclass
class Status:
    """What the status file holds (and ``leadstream status`` prints)."""

    supervisor_pid: int
    updated_at: float
    processes: list[dict[str, Any]] = field(default_factory=list)
    lag: dict[str, int | None] = field(default_factory=dict)


def read_status(path: Path) -> Status | None:
    """The status a running supervisor last wrote, or None when none is running."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    status = Status(**raw)
    try:
        os.kill(status.supervisor_pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by another user
        pass
    return status


class Supervisor:
    """Runs ``specs`` as children until :meth:`request_stop` (or SIGTERM/SIGINT)."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        env: dict[str, str],
        log_dir: Path,
        status_file: Path,
        backoff: Backoff | None = None,
        stop_grace: float = 30.0,
        lag: Callable[[], dict[str, int | None]] | None = None,
        lag_interval: float = 5.0,
        status_line_interval: float = 10.0,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.env = env
        self.log_dir = log_dir
        self.status_file = status_file
        self.backoff = backoff or Backoff()
        self.stop_grace = stop_grace
        self._lag_source = lag
        self._lag_interval = lag_interval
        self._lag: dict[str, int | None] = {}
        self._status_line_interval = status_line_interval
        self._stop = threading.Event()

    # ---- running -----------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Supervise until asked to stop; returns the exit status (0 after a clean stop)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        if self._lag_source is not None:
            threading.Thread(target=self._measure_lag, name="leadstream-serve-lag", daemon=True).start()
        for child in self.children:
            self._start(child)
        last_line = time.monotonic()
        try:
            while not self._stop.is_set():
                self._tend()
                self._write_status()
                if time.monotonic() - last_line >= self._status_line_interval:
                    print(self.status_line(), file=sys.stderr, flush=True)
                    last_line = time.monotonic()
                self._stop.wait(0.5)
        finally:
            self._stop_all()
            self._write_status()
        return 0

    def _start(self, child: _Child) -> None:
        log_path = self.log_dir / f"{child.spec.name}.log"
        with log_path.open("ab") as out:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "leadstream", *child.spec.args], env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None and child.restart_at is None:
                child.last_exit = child.proc.returncode
                ran = now - child.started_at
                child.failures = 1 if ran >= self.backoff.reset_after else child.failures + 1
                delay = self.backoff.delay(child.failures)
                child.restart_at = now + delay
                print(f"serve: {child.spec.name} exited with status {child.last_exit} after {ran:.1f}s; "
                      f"restarting in {delay:.1f}s", file=sys.stderr, flush=True)
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)

    def _stop_all(self) -> None:
        """Newest first: collector, workers, sink (see the module docstring for why)."""
        for child in reversed(self.children):
            child.restart_at = None
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            print(f"serve: stopping {child.spec.name}", file=sys.stderr, flush=True)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                print(f"serve: {child.spec.name} did not stop within {self.stop_grace:.0f}s; killing it",
                      file=sys.stderr, flush=True)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            child.last_exit = proc.returncode

    # ---- reporting -----------------------------------------------------------------------
    def _measure_lag(self) -> None:
        assert self._lag_source is not None
        while not self._stop.is_set():
            try:
                self._lag = self._lag_source()
            except Exception as exc:  # the broker may be down for a while: report unknown lag
                log.debug("lag measurement failed: %s", exc)
                self._lag = dict.fromkeys(self._lag, None)
            self._stop.wait(self._lag_interval)

    def snapshot(self) -> Status:
        now = time.monotonic()
        processes = [
            {"name": c.spec.name, "state": c.state, "pid": c.proc.pid if c.proc else None,
             "restarts": c.restarts, "last_exit": c.last_exit,
             "uptime_s": round(now - c.started_at, 1) if c.state == "running" else None}
            for c in self.children
        ]
        return Status(supervisor_pid=os.getpid(), updated_at=time.time(), processes=processes, lag=dict(self._lag))

    def status_line(self) -> str:
        return format_status_line(self.snapshot())

    def _write_status(self) -> None:
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.snapshot())))
        tmp.replace(self.status_file)  # readers never see a half-written file


def format_status_line(status: Status) -> str:
    """One line: each process with its state and restarts, then the consumer lags."""
    parts = []
    for p in status.processes:
        state = f"up {p['uptime_s']:.0f}s" if p["state"] == "running" else p["state"]
        parts.append(f"{p['name']} {state} (restarts {p['restarts']})")
    lags = ", ".join(f"{name} {'?' if value is None else value}" for name, value in status.lag.items())
    return "serve: " + " · ".join(parts) + (f" · lag {lags}" if lags else "")
