"""Collector benchmark (not a test): requests/s and p99 latency on loopback, real broker.

Starts ``leadstream collector``'s app (uvicorn, one process) on a free port against
fresh, prefixed topics on the configured broker, then drives it with a small asyncio
HTTP/1.1 keep-alive load generator in this process, measuring in the same run:

1. baseline: a trivial starlette app, served by uvicorn with the same options in its own
   process, answering the constant GIF without any work;
2. pixel:    ``GET /p.gif`` hits, each parsed, validated, Avro-encoded and produced;
3. beacon:   ``POST /collect`` with 50 events per request (events/s);

alternating, for a few rounds.

Then it checks that every accepted event reached Kafka, prints the figures and the
ratios against the project's goals (pixel >= 0.6x baseline; beacon >= 5x the pixel's
events/s) and deletes its topics. Usage::

    python bench/collector.py [--seconds 3] [--rounds 2] [--connections 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import Topics
from leadstream.testing.processes import leadstream_cmd

BEACON_EVENTS = 50
GOAL_PIXEL_VS_BASELINE = 0.6
GOAL_BEACON_VS_PIXEL = 5.0


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    events_per_request: int = 1

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def eps(self) -> float:
        return self.rps * self.events_per_request

    @property
    def p99_ms(self) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[98] * 1000

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _drive(port: int, requests: list[bytes], *, seconds: float, connections: int, max_requests: int,
                 name: str, events_per_request: int) -> Phase:
    """Keep ``connections`` keep-alive connections busy for ``seconds`` (bounded by ``max_requests``)."""
    latencies: list[float] = []
    counter = {"sent": 0, "errors": 0}
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < stop_at and counter["sent"] < max_requests:
                counter["sent"] += 1
                request = requests[i % len(requests)]
                i += connections
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status >= 300:
                    counter["errors"] += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    return Phase(name, len(latencies), elapsed, latencies, counter["errors"], events_per_request)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 (bench) Firefox/130.0\r\n\r\n".encode()


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 (bench) Firefox/130.0\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _wait_ready(port: int, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # readiness poll, bounded
    raise TimeoutError(f"the server on port {port} did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _count(settings: Settings, base: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    topic = Topics(settings.topic_prefix).name(base)
    consumer = Consumer(settings.kafka_consumer_config(f"bench-{uuid.uuid4().hex[:6]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions)
    finally:
        consumer.close()


def _serve(port: int) -> None:
    """Child process: the collector app on ``port``."""
    from ground.settings import get_settings
    from producers.collector.server import serve

    serve(get_settings(), "127.0.0.1", port, log_level="warning")


def _serve_baseline(port: int) -> None:
    """Child process: the reference point, the constant GIF with no work, served like the collector."""
    import importlib.util

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from producers.collector.http import gif_response

    async def baseline(request: Request) -> Response:
        return gif_response()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/baseline.gif", baseline, methods=["GET"]),
                            Route("/healthz", healthz, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                http="httptools" if importlib.util.find_spec("httptools") else "h11",
                server_header=False, proxy_headers=True)


async def _run(port: int, baseline_port: int, *, seconds: float, connections: int, max_requests: int,
               rounds: int) -> list[Phase]:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    baseline = [_get("/baseline.gif")]
    pixel = [_get(f"/p.gif?u=https%3A%2F%2Fexample.com%2Fpricing%3Futm_source%3Dgoogle%26utm_medium%3Dcpc"
                  f"%26utm_campaign%3Dbrand&r=https%3A%2F%2Fwww.google.com%2F&aid={uuid.uuid4()}&ti=Pricing")
             for _ in range(512)]
    beacon = []
    for _ in range(64):
        body = {"anonymous_id": str(uuid.uuid4()), "sent_at": 1_750_000_001_000, "events": [
            {"event_id": str(uuid.uuid4()), "type": "page_view", "created_at": 1_750_000_000_000 + i,
             "url": f"https://example.com/docs/{i}?utm_source=newsletter&utm_medium=email", "title": f"Doc {i}",
             "referrer": "https://mail.example.com/"} for i in range(BEACON_EVENTS)]}
        beacon.append(_post("/collect", json.dumps(body).encode()))
    # Warm up every path once (imports, connections, producer metadata) before measuring.
    for target, requests in ((baseline_port, baseline), (port, pixel), (port, beacon)):
        await _drive(target, requests, seconds=0.5, connections=4, max_requests=200, name="warmup",
                     events_per_request=1)
    # The phases alternate for ``rounds`` rounds and are summed per phase, so that load
    # from other processes on a shared machine drifts over all three alike.
    totals: dict[str, Phase] = {}
    for _ in range(rounds):
        for phase in (
            await _drive(baseline_port, baseline, seconds=seconds, connections=connections, max_requests=max_requests,
                         name="baseline (constant GIF)", events_per_request=1),
            await _drive(port, pixel, seconds=seconds, connections=connections, max_requests=max_requests,
                         name="pixel GET /p.gif", events_per_request=1),
            await _drive(port, beacon, seconds=seconds, connections=max(2, connections // 4),
                         max_requests=max_requests // 10, name=f"beacon POST /collect x{BEACON_EVENTS}",
                         events_per_request=BEACON_EVENTS),
        ):
            total = totals.setdefault(phase.name, Phase(phase.name, 0, 0.0, [], 0, phase.events_per_request))
            total.requests += phase.requests
            total.seconds += phase.seconds
            total.latencies.extend(phase.latencies)
            total.errors += phase.errors
    return list(totals.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measured phase per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three alternating phases")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--max-requests", type=int, default=200_000, help="upper bound of requests per phase")
    parser.add_argument("--workers", type=int, default=1,
                        help="collector processes: 1 serves the app in one process; N > 1 runs "
                             "`leadstream collector --workers N` (several processes on one port)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    if args.serve_baseline:
        _serve_baseline(args.serve_baseline)
        return

    prefix = f"bcol{uuid.uuid4().hex[:6]}-"  # own prefix family: other benchmarks share the broker
    settings = Settings(LEADSTREAM_TOPIC_PREFIX=prefix)
    create_topics(settings)
    port, baseline_port = _free_port(), _free_port()
    env = {**os.environ, "LEADSTREAM_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    if args.workers > 1:
        collector_cmd = leadstream_cmd("collector", "--host", "127.0.0.1", "--port", str(port),
                                       "--workers", str(args.workers), "--log-level", "warning")
    else:
        collector_cmd = [sys.executable, __file__, "--serve", str(port)]
    servers = [subprocess.Popen(collector_cmd, env=env),
               subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(baseline_port)], env=env)]
    try:
        _wait_ready(port)
        _wait_ready(baseline_port)
        phases = asyncio.run(_run(port, baseline_port, seconds=args.seconds, connections=args.connections,
                                  max_requests=args.max_requests, rounds=args.rounds))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)
    try:
        baseline, pixel, beacon = phases
        warmup_events = 200 + 200 * BEACON_EVENTS  # upper bound: warm-up pixel + beacon requests
        expected_min = pixel.requests - pixel.errors + (beacon.requests - beacon.errors) * BEACON_EVENTS
        on_kafka = _count(settings, "touches")
        print(f"\ncollector benchmark: {os.cpu_count()} CPU(s), loopback, broker {settings.kafka_bootstrap_servers}, "
              f"{args.rounds} rounds x {args.seconds:.0f}s per phase, {args.connections} connections (beacon: "
              f"{max(2, args.connections // 4)}); collector processes: {args.workers}, baseline: 1")
        print(f"{'phase':<30} {'requests':>9} {'req/s':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for phase in phases:
            print(f"{phase.name:<30} {phase.requests:>9} {phase.rps:>9.0f} {phase.eps:>10.0f} "
                  f"{phase.p50_ms:>8.2f} {phase.p99_ms:>8.2f} {phase.errors:>7}")
        print(f"touches on Kafka after shutdown flush: {on_kafka} (measured phases produced {expected_min}, "
              f"warm-up up to {warmup_events} more)")
        pixel_ratio = pixel.rps / baseline.rps
        beacon_ratio = beacon.eps / pixel.eps
        print(f"pixel / baseline req/s  = {pixel_ratio:.2f}x (goal >= {GOAL_PIXEL_VS_BASELINE}x): "
              f"{'MEETS' if pixel_ratio >= GOAL_PIXEL_VS_BASELINE else 'MISSES'}")
        print(f"beacon / pixel events/s = {beacon_ratio:.2f}x (goal >= {GOAL_BEACON_VS_PIXEL}x): "
              f"{'MEETS' if beacon_ratio >= GOAL_BEACON_VS_PIXEL else 'MISSES'}")
        if on_kafka < expected_min:
            print("WARNING: fewer touches on Kafka than accepted requests")
    finally:
        delete_topics(settings, Topics(prefix).all())


if __name__ == "__main__":
    main()
