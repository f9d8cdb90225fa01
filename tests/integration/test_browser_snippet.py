"""The JS snippet in a real headless browser (Debian's chromium driven by playwright).

A page served locally carries the snippet; it is opened with UTM parameters and a
form on it calls ``leadstream.identify``. Both events are read back from Kafka.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ground.settings import Settings
from leadstream.testing.processes import collector_process
from tests.support.capture import keyed, read_all

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"  # installed by deploy/system-deps.sh (make test runs it)
PAGE = """<!doctype html>
<html><head><title>Q4 launch</title>
<script>{prelude}</script>
<script src="{collector}/js/leadstream.js" async></script>
</head><body>
<form id="signup">
  <input id="email" name="email" type="email">
  <button id="go" type="submit">Get the demo</button>
</form>
<p id="done"></p>
<script>
document.getElementById("signup").addEventListener("submit", function (e) {{
  e.preventDefault();
  leadstream.identify(document.getElementById("email").value, {{plan: "pro", source: "demo-form"}});
  document.getElementById("done").textContent = "sent";
}});
</script>
</body></html>
"""


@pytest.fixture
def site() -> Iterator[Any]:
    """A tiny website on a free port; ``site.page`` sets the HTML it serves."""
    state: dict[str, bytes] = {"html": b""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(state["html"])

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Site:
        url = f"http://127.0.0.1:{server.server_address[1]}/landing"

        @staticmethod
        def page(html: str) -> None:
            state["html"] = html.encode()

    try:
        yield Site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _browse(url: str, email: str) -> str:
    """Open ``url`` in headless chromium, submit the form; returns the snippet's anonymous id."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium missing: run `bash deploy/system-deps.sh`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.leadstream && window.leadstream.loaded", timeout=30_000)
            aid: str = page.evaluate("leadstream.anonymousId()")
            page.fill("#email", email)
            page.click("#go")
            page.wait_for_function("document.getElementById('done').textContent === 'sent'", timeout=30_000)
            return aid
        finally:
            browser.close()


@pytest.mark.parametrize("transport", ["sendBeacon", "pixel-fallback"])
def test_snippet_page_view_and_identify_reach_kafka(topics: Settings, site: Any, transport: str) -> None:
    """UTM page view and form identify arrive decoded, with the same anonymous id (beacon or pixel)."""
    # Without sendBeacon the snippet must fall back to the pixel (and to fetch for identify).
    prelude = "delete Navigator.prototype.sendBeacon;" if transport == "pixel-fallback" else ""
    with collector_process(topics) as collector:
        site.page(PAGE.format(collector=collector, prelude=prelude))
        aid = _browse(site.url + "?utm_source=linkedin&utm_medium=paid_social&utm_campaign=q4-launch",
                      "Buyer@Example.com")
        touches = read_all(topics, "touches", at_least=1)
        identities = read_all(topics, "identities", at_least=1)
    [touch] = touches
    [identify] = identities
    assert touch.key == aid and touch.record["anonymous_id"] == aid
    assert touch.record["utm_source"] == "linkedin"
    assert touch.record["utm_medium"] == "paid_social"
    assert touch.record["utm_campaign"] == "q4-launch"
    assert touch.record["page_title"] == "Q4 launch" and touch.record["touch_type"] == "page_view"
    assert touch.record["url"].startswith(site.url)
    assert identify.key == aid and identify.record["anonymous_id"] == aid
    assert identify.record["email_sha256"] == keyed("buyer@example.com")
    assert identify.record["traits"] == {"plan": "pro"} and identify.record["source_system"] == "demo-form"
