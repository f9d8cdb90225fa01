"""Starting and stopping leadstream's own processes (collector, worker, sink) as children.

The demo runs the real pipeline this way; each child is the same console command a user
would start by hand, configured by environment variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ground.errors import LeadstreamError
from ground.settings import Settings

__all__ = ["Child", "Stack", "settings_env", "wait_until"]


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment under which a child process builds exactly ``settings``."""
    env = dict(os.environ)
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
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


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll a real condition until it holds; raise with ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise LeadstreamError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Stack:
    """Children started for one run; ``stop()`` ends them all, newest first."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "leadstream", *args], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                tail = child.log.read_text(errors="replace")[-2000:]
                raise LeadstreamError(f"the {child.name} process exited (code {child.proc.returncode}); "
                                      f"last lines of {child.log}:\n{tail}")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
