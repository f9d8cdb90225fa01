"""Running one stream worker process (what ``leadstream worker`` does).

Builds the pipeline of streams/app.py from the settings and runs it with Faust's
Worker, which handles signals (SIGTERM/SIGINT stop it cleanly) and table recovery. The
worker logs "leadstream worker ready" and writes ``<datadir>/READY`` only after its
tables are recovered from their changelogs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faust

from ground.settings import get_settings
from streams.app import build_app, summarize
from streams.metrics import serve_metrics
from streams.state_owner import claim_state_dir

__all__ = ["run_worker", "worker_datadir"]

log = logging.getLogger("leadstream.streams")


def worker_datadir(data_dir: Path, app_id: str, worker_id: str) -> Path:
    """Where one worker keeps its RocksDB tables: one directory per worker process."""
    return data_dir / "streams" / app_id / f"worker-{worker_id}"


def run_worker(worker_id: str = "0", data_dir: Path | None = None, loglevel: str = "info",
               create_topics: bool = True) -> int:
    """Run until stopped; returns the process exit status."""
    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    datadir = worker_datadir(settings.data_dir, settings.stream_app_id, worker_id)
    datadir.mkdir(parents=True, exist_ok=True)
    ready_file = datadir / "READY"
    ready_file.unlink(missing_ok=True)
    if create_topics:
        from ground.kafka_admin import create_topics as create

        create(settings)
    claim_state_dir(datadir, settings)  # before Faust opens a table of another namespace
    pipeline = build_app(settings, datadir, worker_id=worker_id)
    serve_metrics(settings, worker_id, pipeline.counters, pipeline.state)

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            log.info("leadstream worker ready (app %s, worker %s)", settings.stream_app_id, worker_id)
            pipeline.state["ready"] = True
            ready_file.write_text("ready\n")

        async def on_stop(self) -> None:
            log.info("leadstream worker stopping: %s", " ".join(summarize(pipeline.counters)))
            pipeline.state["ready"] = False
            ready_file.unlink(missing_ok=True)
            await super().on_stop()

    worker = Worker(pipeline.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
