"""Running leadstream's own commands (collector, worker, sink, serve) as children of a test.

Used by the integration tests and the benchmarks, which drive the product through its
documented interface: the console script and the environment variables of the settings
object. The environment builder is the product's own (``leadstream.stack.settings_env``,
which the demo and ``serve`` use), so a child sees exactly what a user's would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ground.errors import LeadstreamError
from ground.settings import Settings
from leadstream.stack import settings_env
from leadstream.testing.waiting import wait_http

__all__ = ["collector_process", "free_port", "leadstream_cmd", "run_process", "settings_env"]


def free_port() -> int:
    """A loopback port free right now, so parallel children never collide on a fixed one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leadstream_cmd(*args: str) -> list[str]:
    """The console script of the running interpreter, so children run the code under test."""
    script = Path(sys.executable).with_name("leadstream")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("leadstream")
    if found:
        return [found, *args]
    return [sys.executable, "-m", "leadstream", *args]


@contextmanager
def run_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``leadstream <args>``; stop it (SIGTERM, then SIGKILL) when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(leadstream_cmd(*args), env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@contextmanager
def collector_process(settings: Settings, *extra_env: tuple[str, str], workers: int = 1) -> Iterator[str]:
    """A real ``leadstream collector`` on a free port; yields its base URL; SIGTERM on exit."""
    port = free_port()
    env = settings_env(settings, **dict(extra_env))
    proc = subprocess.Popen(leadstream_cmd("collector", "--host", "127.0.0.1", "--port", str(port),
                                           "--log-level", "warning", "--workers", str(workers)), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            # uvicorn re-raises the signal after its graceful shutdown (lifespan included).
            code = proc.wait(timeout=60)
            if code not in (0, -signal.SIGTERM):
                raise LeadstreamError(f"the collector exited with {code} after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
