"""Commands of the capture layer: ``collector``, ``import``, ``dlq``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the capture commands to the root command."""
    import_app = typer.Typer(help="Import offline touches, deals, contacts or identities from CSV.",
                             no_args_is_help=True)
    dlq_app = typer.Typer(help="Inspect the dead-letter topic.", no_args_is_help=True)
    app.add_typer(import_app, name="import")
    app.add_typer(dlq_app, name="dlq")

    @app.command("collector")
    def collector() -> None:
        """Serve the tracking collector (pixel, beacon, identify, webhooks, snippet)."""
        raise typer.Exit(1)
