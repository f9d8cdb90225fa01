"""Run leadstream's own processes (collector, worker, sink) as subprocesses of a test.

Tests drive the product through its documented interface: the console script and the
environment variables of the settings object.
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

from leadstream.stack import http_ready as http_ok
from leadstream.stack import settings_env
from leadstream.stack import wait_until as wait_for

__all__ = ["free_port", "http_ok", "leadstream_cmd", "run_process", "settings_env", "wait_for"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leadstream_cmd(*args: str) -> list[str]:
    """The console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("leadstream")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("leadstream")
    assert found, "the leadstream console script is not installed (pip install -e .)"
    return [found, *args]


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
