"""Serving the collector app with uvicorn (uvloop + httptools when installed).

With ``workers > 1`` uvicorn forks that many processes sharing one listening socket;
each builds its own app (and Kafka producer) from the environment through
:func:`app_from_environment`, so they share nothing but the port.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from ground.settings import Settings
from producers.collector.app import create_app

log = logging.getLogger(__name__)

__all__ = ["app_from_environment", "serve"]


def app_from_environment() -> Any:
    """The collector app of one worker process, configured from the environment."""
    from ground.settings import get_settings

    return create_app(get_settings())


def serve(settings: Settings, host: str | None = None, port: int | None = None, *,
          log_level: str = "info", workers: int = 1) -> None:
    """Run the collector until SIGINT/SIGTERM; the app's lifespan flushes the producer."""
    import uvicorn

    if settings.id_secret is None:
        log.warning("LEADSTREAM_ID_SECRET is not set: identifies and contact changes that carry an email "
                    "are refused (400, dead letter reason id_secret_missing)")
    app: Any = create_app(settings)
    if workers > 1:  # each forked process builds its own app from the same environment
        app = "producers.collector.server:app_from_environment"
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
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
