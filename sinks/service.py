"""``leadstream sink``: the consumer loop plus, in embedded mode, the query API.

The consumer runs in its own thread and the HTTP server (uvicorn) in another (or in
the main thread for the CLI). They do not share an engine connection: the consumer's
calls are serialised by its :class:`~sinks.clickhouse.Database` lock, and the API reads
through :class:`~sinks.analyst_pool.AnalystPool`, connections of its own with their own
limits, so a long analyst query never holds ingestion and a slow insert never stalls
the API.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from ground.errors import SinkError
from ground.settings import Settings
from sinks.alert_watch import AlertWatch, CachedLag, metrics_text
from sinks.analyst_pool import AnalystPool
from sinks.api import build_app, require_query_token
from sinks.clickhouse import Database, connect
from sinks.sink import SINK_TOPICS, Sink

__all__ = ["SinkService"]

log = logging.getLogger("leadstream.sink")


class SinkService:
    """A running sink: consumer thread, optional query API, one database."""

    def __init__(self, settings: Settings, db: Database | None = None, *, serve_api: bool | None = None,
                 group_id: str | None = None) -> None:
        self.settings = settings
        self.serve_api = settings.clickhouse_embedded if serve_api is None else serve_api
        # an API exposed without its token is refused before anything is opened or consumed
        self._token = require_query_token(settings) if self.serve_api else None
        # a sink restarted right after a crash can find the engine still locked by the dying one
        self.db = db or connect(settings, lock_wait=settings.engine_lock_wait_seconds)
        self.sink = Sink(settings, self.db, group_id=group_id)
        self._consumer_thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._crashed: BaseException | None = None
        self._analysts: AnalystPool | None = None
        self._watch: AlertWatch | None = None
        self._alert_db: AnalystPool | None = None

    def health(self) -> dict[str, Any]:
        alive = self._consumer_thread is not None and self._consumer_thread.is_alive()
        return {"status": "ok" if alive else "down", "database": self.db.database,
                "error": repr(self._crashed) if self._crashed else None, "sink": self.sink.stats.snapshot()}

    def _run_consumer(self) -> None:
        try:
            self.sink.run(on_ready=self._subscribed.set)
        except BaseException as exc:  # surfaced by /healthz and stop()
            self._crashed = exc
            log.exception("sink consumer stopped")
            self._subscribed.set()

    def _make_server(self) -> uvicorn.Server:
        if self._analysts is None:
            self._analysts = AnalystPool(self.settings)
        # one connection of its own: a periodic evaluation never takes an analyst's place
        self._alert_db = AnalystPool(self.settings.model_copy(update={"analyst_connections": 1}))
        self._watch = AlertWatch(self.settings, self._alert_db)
        if self.settings.alert_interval_seconds > 0:
            self._watch.start()
        watch = self._watch
        lag = CachedLag(self.settings, self.sink.group_id, [self.sink.topics.name(b) for b in SINK_TOPICS])
        app = build_app(self._analysts, self.health, token=self._token, alerts=watch.check,
                        metrics=lambda: metrics_text(self.sink.stats.snapshot, watch, lag))
        config = uvicorn.Config(app, host=self.settings.query_host, port=self.settings.query_port,
                                log_level="warning", lifespan="off")
        return uvicorn.Server(config)

    def start(self, timeout: float = 30.0) -> SinkService:
        """Start the consumer (and the API) in background threads; returns once both are up."""
        self._consumer_thread = threading.Thread(target=self._run_consumer, name="sink-consumer", daemon=True)
        self._consumer_thread.start()
        if self.serve_api:
            self._server = self._make_server()
            self._server_thread = threading.Thread(target=self._server.run, name="query-api", daemon=True)
            self._server_thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            api_up = self._server is None or self._server.started
            if self._subscribed.is_set() and api_up:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise SinkError("the sink did not start in time")
        if self._crashed:
            raise SinkError(f"the sink consumer failed: {self._crashed!r}")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Flush what is acknowledged-ready, stop the consumer and the API."""
        self.sink.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(timeout)
        if self._consumer_thread is not None:
            self._consumer_thread.join(timeout)
        self._close_analysts()

    def _close_analysts(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._alert_db is not None:
            self._alert_db.close()
            self._alert_db = None
        if self._analysts is not None:
            self._analysts.close()
            self._analysts = None

    def serve_forever(self) -> None:
        """The CLI's foreground mode: API in the main thread (Ctrl-C stops it), consumer in a thread."""
        self._consumer_thread = threading.Thread(target=self._run_consumer, name="sink-consumer", daemon=True)
        self._consumer_thread.start()
        try:
            if self.serve_api:
                self._server = self._make_server()
                self._server.run()
            else:
                while self._consumer_thread.is_alive():
                    self._consumer_thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.sink.stop()
            self._consumer_thread.join(60)
            self._close_analysts()
