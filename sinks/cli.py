"""Commands of the analytics layer: ``migrate``, ``sink``, ``query``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the root command."""

    @app.command("migrate")
    def migrate() -> None:
        """Apply the ClickHouse migrations (idempotent)."""
        raise typer.Exit(1)

    @app.command("sink")
    def sink() -> None:
        """Write the enriched topics into ClickHouse (and serve queries in embedded mode)."""
        raise typer.Exit(1)

    @app.command("query")
    def query() -> None:
        """Run a report: sources, quarterly, funnel, contact-sources, attribution, quality."""
        raise typer.Exit(1)
