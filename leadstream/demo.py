"""``leadstream demo``: the whole pipeline on a seeded synthetic dataset."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo() -> None:
        """Start the local stack, stream a synthetic dataset through it, print the sources table."""
        raise typer.Exit(1)
