"""`leadstream collector` as a real server process: HTTP on a free port, clean shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.processes import collector_process, free_port, settings_env
from leadstream.testing.waiting import wait_http
from schemas import schema_info
from tests.support.capture import read_all
from tests.unit.test_codec_properties import independent_crc64_avro

pytestmark = pytest.mark.integration

LEADSTREAM = str(Path(sys.executable).parent / "leadstream")


@pytest.fixture
def collector_url(topics: Settings) -> Iterator[str]:
    """A `leadstream collector --port N` subprocess on the test's topics; stopped with SIGTERM."""
    with collector_process(topics) as url:
        yield url


def test_walking_skeleton_pixel_over_http(collector_url: str, topics: Settings) -> None:
    """GET /p.gif?u=https://example.com/?utm_source=google&utm_medium=cpc&aid=<id> -> Avro Touch on touches.

    The message header is C3 01 + the CRC-64-AVRO fingerprint of Touch's canonical form,
    computed here independently of the codec.
    """
    from fastavro.schema import to_parsing_canonical_form

    aid = str(uuid.uuid4())
    with httpx.Client() as client:
        response = client.get(f"{collector_url}/p.gif?u=https://example.com/?utm_source=google&utm_medium=cpc"
                              f"&aid={aid}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
        beacon = client.post(f"{collector_url}/collect",
                             content=json.dumps({"anonymous_id": aid, "events": [
                                 {"url": "https://example.com/pricing", "title": "Pricing"}]}))
        assert beacon.status_code == 200
    touches = read_all(topics, "touches", at_least=2)
    assert {m.key for m in touches} == {aid}
    first = next(m for m in touches if m.record["utm_source"] == "google")
    assert first.record["utm_medium"] == "cpc" and first.record["anonymous_id"] == aid
    pcf = to_parsing_canonical_form(schema_info("Touch").raw).encode()
    assert first.value[:2] == b"\xc3\x01"
    assert first.value[2:10] == independent_crc64_avro(pcf).to_bytes(8, "little")


def test_shutdown_flushes_everything(topics: Settings) -> None:
    """Events accepted right before SIGTERM are all on Kafka once the process has exited."""
    port = free_port()
    proc = subprocess.Popen([LEADSTREAM, "collector", "--port", str(port), "--log-level", "warning"],
                            env=settings_env(topics))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client() as client:
            body = {"anonymous_id": "flush", "events": [{"url": f"https://example.com/{i}"} for i in range(200)]}
            assert client.post(f"http://127.0.0.1:{port}/collect", json=body).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(read_all(topics, "touches", at_least=200)) == 200
