"""``leadstream serve`` and ``leadstream status``: a whole deployment on one machine.

``serve`` runs the sink, the stream workers and the collector as supervised children
(``leadstream.supervisor``), restarting any that exits; ``status`` reads the status
file a running ``serve`` keeps up to date and prints one row per process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ground.settings import Settings, get_settings

__all__ = ["register", "status_file"]


def status_file(settings: Settings) -> Path:
    """Where a ``serve`` of this data directory and namespace keeps its status."""
    name = settings.stream_app_id.strip("-.") or "default"
    return settings.data_dir / "serve" / f"{name}.status.json"


def _consumer_lag(settings: Settings) -> dict[str, int | None]:
    from ground.kafka_admin import consumer_lag
    from ground.topics import RAW_TOPICS, Topics

    topics = Topics(settings.topic_prefix)
    sink_topics = [topics.enriched_touches, topics.enriched_contacts, topics.identity_map,
                   topics.enriched_deals, topics.dead_letter]
    return {
        "worker": consumer_lag(settings, settings.stream_app_id, [topics.name(t) for t in RAW_TOPICS]),
        "sink": consumer_lag(settings, settings.sink_group_id, sink_topics),
    }


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        workers: Annotated[int, typer.Option(
            "--workers", min=1, help="Stream worker processes (each gets its own --id and RocksDB directory).")] = 1,
        create_topics: Annotated[bool, typer.Option(
            "--create-topics/--no-create-topics", help="Create missing leadstream topics first.")] = True,
        stop_grace: Annotated[float, typer.Option(
            "--stop-grace", min=1.0, help="Seconds each process gets to stop on SIGTERM before it is killed.")] = 30.0,
    ) -> None:
        """Run the sink, the stream workers and the collector as supervised processes.

        A process that exits is restarted with a backoff (1 s doubling to 30 s). SIGTERM or
        Ctrl-C stops the collector first (it flushes what it accepted), then the workers,
        then the sink. `leadstream status` shows each process, its restarts and the lag.
        """
        from leadstream.stack import settings_env
        from leadstream.supervisor import ProcessSpec, Supervisor

        settings = get_settings()
        if settings.clickhouse_embedded:
            from sinks.api import require_query_token

            require_query_token(settings)  # refused here, not as a sink child restarted forever
        if create_topics:
            from ground.kafka_admin import create_topics as create

            create(settings)
        specs = [ProcessSpec("sink", ("sink",))]
        specs += [ProcessSpec(f"worker-{i}", ("worker", "--id", str(i), "--no-create-topics"))
                  for i in range(workers)]
        specs.append(ProcessSpec("collector", ("collector",)))
        supervisor = Supervisor(specs, env=settings_env(settings), log_dir=settings.data_dir / "logs",
                                status_file=status_file(settings), stop_grace=stop_grace,
                                lag=lambda: _consumer_lag(settings))
        print(f"serve: {len(specs)} processes; logs in {settings.data_dir / 'logs'}; "
              f"status: leadstream status", file=sys.stderr, flush=True)
        raise typer.Exit(supervisor.run())

    @app.command("status")
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    ) -> None:
        """Show the processes of a running `leadstream serve`: state, pid, uptime, restarts, lag."""
        from dataclasses import asdict

        from rich.console import Console
        from rich.table import Table

        from leadstream.supervisor import read_status

        settings = get_settings()
        current = read_status(status_file(settings))
        if current is None:
            print(f"no `leadstream serve` is running for {settings.data_dir} "
                  f"(namespace {settings.topic_prefix!r}, app id {settings.app_id!r})", file=sys.stderr)
            raise typer.Exit(1)
        if as_json:
            print(json.dumps(asdict(current), indent=2))
            return
        table = Table("process", "state", "pid", "uptime", "restarts", "last exit")
        for p in current.processes:
            uptime = f"{p['uptime_s']:.0f}s" if p["uptime_s"] is not None else "-"
            table.add_row(p["name"], p["state"], str(p["pid"] or "-"), uptime, str(p["restarts"]),
                          "-" if p["last_exit"] is None else str(p["last_exit"]))
        console = Console()
        console.print(table)
        lags = ", ".join(f"{k} {'unknown' if v is None else v}" for k, v in current.lag.items())
        console.print(f"consumer lag (messages not yet committed): {lags or 'not measured yet'}")
