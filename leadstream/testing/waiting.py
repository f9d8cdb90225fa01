"""Waiting for a real condition, for tests and benchmarks.

Integration tests and bench/query.py poll real state (a report row, a restarted child,
an HTTP endpoint) with a deadline instead of sleeping a guessed time. The polling loop is
the product's own (``leadstream.stack.wait_until``, which the demo uses); this module only
gives it the name the tests read and adds the HTTP readiness wait.
"""

from __future__ import annotations

from leadstream.stack import http_ready as http_ok
from leadstream.stack import wait_until as wait_for

__all__ = ["http_ok", "wait_for", "wait_http"]


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Until ``url`` answers 200 (a started server), or fail when ``timeout`` passes."""
    wait_for(http_ok(url), timeout, f"{url} to answer", interval=0.1)
