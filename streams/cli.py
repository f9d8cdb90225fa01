"""Commands of the stream layer: ``worker``, ``classify``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the stream commands to the root command."""
    from streams.taxonomy_cli import register as register_classify

    register_classify(app)

    @app.command("worker")
    def worker() -> None:
        """Run a Faust stream worker (identity, first touch, engagement, deals)."""
        raise typer.Exit(1)
