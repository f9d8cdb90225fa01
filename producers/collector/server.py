"""Serving the collector app with uvicorn (uvloop + httptools when installed)."""

from __future__ import annotations

import importlib.util

from ground.settings import Settings
from producers.collector.app import create_app

__all__ = ["serve"]


def serve(settings: Settings, host: str | None = None, port: int | None = None, *,
          log_level: str = "info") -> None:
    """Run the collector until SIGINT/SIGTERM; the app's lifespan flushes the producer."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.collector_host,
        port=port or settings.collector_port,
        log_level=log_level,
        # Access logs cost more than the pixel itself; /metrics counts requests instead.
        access_log=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        server_header=False,
        proxy_headers=True,
    )
