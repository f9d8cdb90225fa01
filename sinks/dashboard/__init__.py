"""The live dashboard: one page that reads the query API's ``/reports`` JSON.

Marketing and sales people do not use a terminal, so the reports are also a web page:
``/dashboard`` on the query API (the sink in embedded mode, ``leadstream dashboard``
against a ClickHouse server). The page holds no data: it fetches ``/reports/*`` and
``/healthz`` from the same origin and draws them, so every figure on it is a figure of
the JSON. The charting library is vendored (``static/vendor/``, Chart.js, MIT, pinned by its
file name), so the page works offline, with no CDN and no build step.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["CHART_JS", "DASHBOARD_DIR", "OPEN_PREFIXES", "dashboard_routes"]

DASHBOARD_DIR = Path(__file__).parent / "static"
#: The vendored charting library (npm ``chart.js``, its ``dist/chart.umd.min.js``).
CHART_JS = "vendor/chart-4.5.1.umd.min.js"
#: Paths the page itself lives under: served without the API token (they hold no data;
#: the page sends the token with every data request).
OPEN_PREFIXES = ("/dashboard",)


def dashboard_routes() -> list[BaseRoute]:
    """``/dashboard`` (the page) and ``/dashboard/static/...`` (its script, style and library)."""

    async def page(request: Request) -> Response:
        return FileResponse(DASHBOARD_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return [Route("/dashboard", page), Mount("/dashboard/static", StaticFiles(directory=DASHBOARD_DIR))]
