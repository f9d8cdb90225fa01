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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from leadstream.settings import Settings

__all__ = ["free_port", "leadstream_cmd", "run_process", "settings_env", "wait_for"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process build exactly ``settings``."""
    env = dict(os.environ)
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if not isinstance(alias, str):
            continue
        value = getattr(settings, name)
        if value is None:
            env.pop(alias, None)
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[alias] = str(value)
    env.update(extra)
    return env


def leadstream_cmd(*args: str) -> list[str]:
    """The console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("leadstream")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("leadstream")
    assert found, "the leadstream console script is not installed (pip install -e .)"
    return [found, *args]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll a real condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


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
