"""Commands of the capture layer: ``collector``, ``import``, ``dlq``.

``leadstream collector`` serves the HTTP collector; ``leadstream import KIND FILE``
publishes a CSV of offline touches, deals, contacts or identities; ``leadstream dlq
tail`` prints the latest dead letters.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["IMPORT_COMMANDS", "register"]


def _import(name: str, file: Path) -> None:
    """Import one CSV file with a progress bar; exit 3 when rows were rejected."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ground.settings import get_settings
    from producers.imports import count_rows, import_csv

    console = Console(stderr=True)
    if not file.is_file():
        console.print(f"[red]error:[/red] {file} is not a file")
        raise typer.Exit(2)
    total = count_rows(file)
    with Progress(TextColumn(f"importing {name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(name, total=total)
        result = import_csv(name, file, get_settings(), on_row=lambda _row: progress.advance(task))
    console.print(f"{file.name}: {result.accepted} of {result.total} rows published, "
                  f"{len(result.rejected)} rejected (sent to the dead-letter topic)")
    if result.rejected:
        table = Table("row", "reason", "detail", title="rejected rows")
        for error in result.rejected:
            table.add_row(str(error.row), error.reason, error.detail)
        console.print(table)
        raise typer.Exit(3)


#: ``leadstream import NAME``: (command help, help of its FILE argument).
IMPORT_COMMANDS: dict[str, tuple[str, str]] = {
    "touches": ("Offline touches: trade-show scans, calls, direct mail, webinar lists.",
                "CSV with event_time, anonymous_id/contact_id, type, ... (docs/capture.md, CSV imports)."),
    "deals": ("Deal changes from a CRM export.",
              "CSV with event_time, deal_id, change, amount, primary_contact_id, ..."),
    "contacts": ("Contact changes (created, updated, merge) with contact source and lifecycle stage.",
                 "CSV with event_time, contact_id, change, contact_source, ..."),
    "identities": ("Anonymous id -> contact links (e.g. form fills exported from a marketing tool).",
                   "CSV with event_time, anonymous_id, contact_id or email, ..."),
    "spend": ("Marketing spend per day and channel › source › campaign (the roi report).",
              "CSV with date, channel, source, campaign, amount, currency."),
    "rates": ("Exchange rates: one unit of currency is worth rate units of the reporting currency from date on.",
              "CSV with date, currency, rate."),
}


def _add_import(import_app: typer.Typer, name: str, summary: str, columns: str) -> None:
    """Register ``leadstream import NAME FILE``."""

    # A default, not Annotated: the annotations of this module are strings (postponed
    # evaluation) and ``columns`` would not resolve when typer reads them.
    def command(file: Path = typer.Argument(..., help=columns)) -> None:  # noqa: B008
        _import(name, file)

    command.__doc__ = summary
    import_app.command(name)(command)


def register(app: typer.Typer) -> None:
    """Add the capture commands to the root command."""
    import_app = typer.Typer(help="Import offline touches, deals, contacts or identities from CSV.",
                             no_args_is_help=True)
    dlq_app = typer.Typer(help="Inspect the dead-letter topic.", no_args_is_help=True)
    app.add_typer(import_app, name="import")
    app.add_typer(dlq_app, name="dlq")

    @app.command("collector")
    def collector(
        host: str = typer.Option(None, help="Interface to bind (default LEADSTREAM_COLLECTOR_HOST)."),
        port: int = typer.Option(None, help="Port to listen on (default LEADSTREAM_COLLECTOR_PORT)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
        workers: int = typer.Option(1, "--workers", min=1,
                                    help="Collector processes sharing the port (each with its own producer)."),
    ) -> None:
        """Serve the tracking collector (pixel, beacon, identify, webhooks, snippet, metrics)."""
        from ground.settings import get_settings
        from producers.collector.server import serve

        serve(get_settings(), host, port, log_level=log_level, workers=workers)

    for name, (summary, columns) in IMPORT_COMMANDS.items():
        _add_import(import_app, name, summary, columns)

    @dlq_app.command("tail")
    def dlq_tail(
        count: int = typer.Option(20, "-n", "--count", help="How many of the latest dead letters to print."),
        follow_: bool = typer.Option(False, "-f", "--follow", help="Keep printing new dead letters."),
    ) -> None:
        """Print the latest dead letters readably (reason, stage, origin, payload)."""
        from ground.settings import get_settings
        from producers.dlq import follow, format_entry, latest

        settings = get_settings()
        entries = latest(settings, count)
        for entry in entries:
            print(format_entry(entry))
        if not entries:
            print("no dead letters")
        if follow_:
            try:
                for entry in follow(settings):
                    print(format_entry(entry), flush=True)
            except KeyboardInterrupt:
                pass
