"""The ``leadstream`` command: one entry point for every process and tool.

Each area registers its own commands (``leadstream.commands.capture``, ``.stream``,
``.classify``, ``.analytics``, ``.demo``), so this module only wires them together and
owns the commands that concern the local broker itself (``kafka``, ``topics``).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ground.errors import LeadstreamError
from ground.settings import get_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="leadstream",
    help="Event-sourced streaming tracker for lead sources (Kafka + Avro + Faust + ClickHouse).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(help="Run the local single-node Kafka broker (KRaft) fetched from Maven Central.",
                        no_args_is_help=True)
topics_app = typer.Typer(help="Manage leadstream's Kafka topics.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
console = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from leadstream import __version__

        print(f"leadstream {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the installed version and exit."),
) -> None:
    """Event-sourced streaming tracker for lead sources (Kafka + Avro + Faust + ClickHouse)."""


def _local_broker_or_exit() -> object:
    from leadstream.broker import LocalBroker

    settings = get_settings()
    if not settings.kafka_is_local:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} is not on this "
                      "machine: nothing local is started or stopped.")
        raise typer.Exit(0)
    return LocalBroker(settings)


@kafka_app.command("up")
def kafka_up() -> None:
    """Start the local broker (downloads the jars on first run); idempotent."""
    import time

    from leadstream.broker import LocalBroker

    broker = _local_broker_or_exit()
    assert isinstance(broker, LocalBroker)
    started = time.monotonic()
    info = broker.up()
    console.print(f"Kafka {info.version} ready on {info.bootstrap} (cluster id {info.cluster_id}) "
                  f"in {time.monotonic() - started:.1f}s; logs: {broker.log_file}")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the local broker and wait until its port is free."""
    from leadstream.broker import LocalBroker

    broker = _local_broker_or_exit()
    assert isinstance(broker, LocalBroker)
    if broker.down():
        console.print(f"Kafka on port {broker.port} stopped; the port is free.")
    else:
        console.print(f"No leadstream broker was running on port {broker.port}.")


@kafka_app.command("status")
def kafka_status() -> None:
    """Print the cluster id, broker count and version of the configured broker."""
    from leadstream.broker import LocalBroker, describe_cluster

    settings = get_settings()
    try:
        cluster_id, brokers, controller = describe_cluster(settings.kafka_bootstrap_servers)
    except Exception as exc:
        console.print(f"Kafka at {settings.kafka_bootstrap_servers} is not reachable ({exc}).")
        raise typer.Exit(1) from exc
    version = LocalBroker(settings).running_version() if settings.kafka_is_local else "unknown (remote)"
    print(f"bootstrap: {settings.kafka_bootstrap_servers}")
    print(f"cluster_id: {cluster_id}")
    print(f"brokers: {brokers}")
    print(f"controller: {controller}")
    print(f"version: {version}")


@topics_app.command("create")
def topics_create() -> None:
    """Create every leadstream topic with the configured prefix and partition count."""
    from ground.kafka_admin import create_topics

    settings = get_settings()
    for name, state in create_topics(settings).items():
        print(f"{name}: {state} ({settings.topic_partitions} partitions)")


def _register_packages() -> None:
    """Let each stage package add its commands."""
    from leadstream.commands import analytics, capture, classify, demo, privacy, serve, stream

    for area in (capture, stream, classify, analytics, privacy, serve, demo):
        area.register(app)


_register_packages()


def main() -> None:
    """Console-script entry point: clear one-line errors instead of tracebacks."""
    try:
        app()
    except LeadstreamError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
