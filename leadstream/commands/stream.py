"""Commands of the stream layer: ``worker`` (``classify`` is in leadstream.commands.classify).

``leadstream worker`` runs one Faust worker process; start several (each with its own
``--id`` or data directory) to share the partitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the stream commands to the root command."""
    @app.command("worker")
    def worker(
        worker_id: Annotated[str, typer.Option(
            "--id", help="Name of this worker process; its RocksDB directory is "
                         "<data dir>/streams/<app id>/worker-<id>. Give each process on one machine its own.")] = "0",
        data_dir: Annotated[Path | None, typer.Option(
            "--data-dir", help="Override LEADSTREAM_DATA_DIR for this worker.")] = None,
        loglevel: Annotated[str, typer.Option("--loglevel", help="debug, info, warning or error.")] = "info",
        create_topics: Annotated[bool, typer.Option(
            "--create-topics/--no-create-topics", help="Create missing leadstream topics first.")] = True,
    ) -> None:
        """Run a Faust stream worker (identity, first touch, engagement, deals) until stopped."""
        from streams.worker import run_worker

        raise typer.Exit(run_worker(worker_id=worker_id, data_dir=data_dir, loglevel=loglevel,
                                    create_topics=create_topics))
