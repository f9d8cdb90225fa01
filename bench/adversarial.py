"""Adversarial-input benchmark (not a test): time to answer hostile bodies, and /healthz meanwhile.

Starts ``leadstream collector`` (one process) on a free port against fresh, prefixed
topics on the configured broker. For each endpoint (pixel, beacon, identify, both
webhooks, signed) and each hostile shape at 1 KB, 100 KB and the body limit
(``LEADSTREAM_MAX_BODY_BYTES``), it sends the request a few times and takes the median
time to answer, while a second thread polls ``GET /healthz`` every 5 ms for the whole
run. The baseline, measured in the same run, is a small valid beacon.

Goals: <= 20 ms per request at 100 KB, <= 200 ms at the limit, /healthz p99 <= 10 ms
throughout. Every answer must be 4xx (a hostile body is never accepted, never a 5xx)
or 2xx for the shapes that are merely large but valid. Usage::

    python bench/adversarial.py [--repeat 3] [--timeout 120] [--only identify]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import Topics

GOAL_100K_MS = 20.0
GOAL_LIMIT_MS = 200.0
GOAL_HEALTHZ_P99_MS = 10.0
SECRET = "bench-secret"


@dataclass
class Row:
    endpoint: str
    shape: str
    size: int
    median_ms: float
    statuses: str


def _run(text: str, size: int) -> str:
    return (text * (size // len(text) + 1))[:size]


# Each shape: size -> the raw JSON value (bytes) put where the endpoint takes free-form
# data (a trait, a property); raw, so that invalid JSON and invalid UTF-8 can be sent.
SHAPES: dict[str, Callable[[int], bytes]] = {
    "address-run+@": lambda n: json.dumps(_run("a", n - 20) + "@").encode(),
    "alternating a@": lambda n: json.dumps(_run("a@", n - 20)).encode(),
    "dotted host": lambda n: json.dumps("a@" + _run("a.", n - 20)).encode(),
    "deep nesting": lambda n: b"[" * (n // 2 - 20) + b"]" * (n // 2 - 20),
    "many fields": lambda n: json.dumps({f"k{i}": i for i in range(n // 12)}).encode(),
    "huge number": lambda n: b"9" * (n - 120),
    "invalid utf-8": lambda n: b'"' + b"\xff\xfe" * ((n - 120) // 2) + b'"',
}

TEMPLATES = {
    "pixel": (b"", b""),
    "collect": (b'{"events": [{"anonymous_id": "a1", "type": "page_view", "url": "https://example.com/", '
                b'"properties": {"p": ', b"}}]}"),
    "identify": (b'{"anonymous_id": "a1", "email": "jane@example.com", "traits": {"t": ', b"}}"),
    "deals": (b'{"deal_id": "d1", "change": "created", "primary_contact_id": "c1", "properties": {"p": ', b"}}"),
    "contacts": (b'{"contact_id": "c1", "change": "updated", "properties": {"p": ', b"}}"),
}


def _body(endpoint: str, shape: str, size: int) -> bytes:
    head, tail = TEMPLATES[endpoint]
    return head + SHAPES[shape](size - len(head) - len(tail)) + tail  # the whole body is ``size``


def _signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadstream-Timestamp": ts, "X-Leadstream-Signature": f"sha256={digest}"}


def _send(client: httpx.Client, base: str, endpoint: str, body: bytes) -> int:
    if endpoint == "pixel":
        # A URL cannot carry a body's worth: clients and servers cap a request line near 64 KB,
        # so the pixel gets the first 8 KB of the shape (at most 48 KB once percent-encoded).
        query = body[: 8 * 1024].decode("latin-1")
        return client.get(f"{base}/p.gif", params={"aid": "a1", "u": "https://example.com/?" + query}).status_code
    path = {"collect": "/collect", "identify": "/identify", "deals": "/webhooks/deals",
            "contacts": "/webhooks/contacts"}[endpoint]
    headers = {"Content-Type": "application/json"}
    if endpoint in ("deals", "contacts"):
        headers.update(_signed(body))
    return client.post(f"{base}{path}", content=body, headers=headers).status_code


def _probe(base: str, stop: Any, out: Any) -> None:
    """Poll /healthz every 5 ms on its own connection until ``stop``; send the latencies back."""
    latencies: list[float] = []
    failures = 0
    with httpx.Client(timeout=30) as client:
        client.get(f"{base}/healthz")  # connection set-up is not the collector's latency
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = client.get(f"{base}/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
            stop.wait(0.005)
    out.put((latencies, failures))


class HealthProbe:
    """The /healthz poller, in a process of its own so that building megabyte bodies here
    (which holds this interpreter's GIL) does not show up as collector latency."""

    def __init__(self, base: str) -> None:
        self.stop = multiprocessing.Event()
        self._out: Any = multiprocessing.Queue()
        self._proc = multiprocessing.Process(target=_probe, args=(base, self.stop, self._out), daemon=True)
        self.latencies: list[float] = []
        self.failures = 0

    def start(self) -> None:
        self._proc.start()

    def finish(self) -> None:
        self.stop.set()
        if self._proc.is_alive() or self._proc.exitcode is not None:
            self.latencies, self.failures = self._out.get(timeout=60)
            self._proc.join(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="requests per cell (median taken)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--only", default=None, help="one endpoint: pixel, collect, identify, deals, contacts")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in bytes (default 1KB,100KB,limit)")
    args = parser.parse_args()

    prefix = f"adv{uuid.uuid4().hex[:6]}-"
    base_settings = Settings()
    settings = base_settings.model_copy(update={"topic_prefix": prefix, "topic_partitions": 2})
    limit = settings.max_body_bytes
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [1_000, 100_000, limit]
    create_topics(settings)
    port = _free_port()
    env = {**os.environ, "LEADSTREAM_TOPIC_PREFIX": prefix, "LEADSTREAM_COLLECTOR_PORT": str(port),
           "LEADSTREAM_WEBHOOK_SECRET": SECRET, "LEADSTREAM_ID_SECRET": "bench-id-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "leadstream", "collector"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rows: list[Row] = []
    probe = HealthProbe(base)
    try:
        with httpx.Client(timeout=args.timeout) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the collector did not start")
                time.sleep(0.1)
            valid = json.dumps({"events": [{"anonymous_id": "a1", "type": "page_view",
                                            "url": "https://example.com/?utm_source=x"}]}).encode()
            baseline = []
            for _ in range(20):
                started = time.perf_counter()
                assert _send(client, base, "collect", valid) == 200
                baseline.append((time.perf_counter() - started) * 1000)
            probe.start()
            endpoints = [args.only] if args.only else ["pixel", "collect", "identify", "deals", "contacts"]
            for endpoint in endpoints:
                for shape in SHAPES:
                    for size in sizes:
                        body = _body(endpoint, shape, size)
                        times, statuses = [], []
                        for _ in range(args.repeat):
                            started = time.perf_counter()
                            try:
                                statuses.append(str(_send(client, base, endpoint, body)))
                            except httpx.TimeoutException:
                                statuses.append("timeout")
                            except (httpx.TransportError, httpx.InvalidURL):
                                # The HTTP layer refused the request before the app saw it.
                                statuses.append("refused")
                            times.append((time.perf_counter() - started) * 1000)
                        rows.append(Row(endpoint, shape, size, statistics.median(times),
                                        ",".join(sorted(set(statuses)))))
                        print(f"  {endpoint:9} {shape:15} {size:>9,} B  {rows[-1].median_ms:9.1f} ms  "
                              f"{rows[-1].statuses}", flush=True)
    finally:
        if probe.stop.is_set() is False and rows:
            probe.finish()
        proc.terminate()
        proc.wait(timeout=30)
        delete_topics(settings, Topics(prefix).all())
    return _report(rows, statistics.median(baseline), probe, sizes, limit)


def _verdict(ok: bool) -> str:
    return "MEETS" if ok else "MISSES"


def _report(rows: list[Row], baseline_ms: float, probe: HealthProbe, sizes: list[int], limit: int) -> int:
    print(f"\nbaseline: a small valid beacon answers in {baseline_ms:.1f} ms (median of 20)")
    print(f"{'endpoint':9} {'shape':15} {'size':>10}  {'median':>9}  {'goal':>7}  status     verdict")
    bad = 0
    for row in rows:
        goal = GOAL_LIMIT_MS if row.size >= limit else GOAL_100K_MS
        ok = row.median_ms <= goal and "timeout" not in row.statuses and not row.statuses.startswith("5")
        bad += not ok
        print(f"{row.endpoint:9} {row.shape:15} {row.size:>10,}  {row.median_ms:7.1f}ms  {goal:5.0f}ms  "
              f"{row.statuses:10} {_verdict(ok)}")
    latencies = sorted(probe.latencies) or [float("nan")]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"\n/healthz during the run: {len(probe.latencies)} requests, p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms, failures {probe.failures} "
          f"(goal p99 <= {GOAL_HEALTHZ_P99_MS:.0f} ms): {_verdict(p99 <= GOAL_HEALTHZ_P99_MS)}")
    slow = [round(v) for v in probe.latencies if v > GOAL_HEALTHZ_P99_MS]
    print(f"/healthz answers over {GOAL_HEALTHZ_P99_MS:.0f} ms: {len(slow)} {slow[:10]}")
    print(f"requests: {len(rows) - bad} of {len(rows)} cells meet their goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
