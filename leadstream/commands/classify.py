"""``leadstream classify``: show how the channel taxonomy classifies one hit.

A debugging aid next to the stream worker: it runs exactly the classifier the worker
runs (same rules file, same site domains) on a URL plus optional referrer and touch
type, and prints the classification as JSON, including the rule that matched and the
rules version, so a user can see why a hit landed where it did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``classify`` command to the root command."""

    @app.command("classify")
    def classify(
        url: Annotated[
            str, typer.Argument(help="The page URL of the hit, with its query string (UTM tags, click ids).")
        ],
        referrer: Annotated[
            str | None, typer.Option("--referrer", "-r", help="The referrer of the hit.")
        ] = None,
        touch_type: Annotated[
            str, typer.Option("--type", "-t", help="Touch type, e.g. page_view, event_scan, webinar_attended.")
        ] = "page_view",
        taxonomy: Annotated[
            Path | None,
            typer.Option("--taxonomy", help="Rules file to use instead of LEADSTREAM_TAXONOMY / the default."),
        ] = None,
        site_domain: Annotated[
            list[str] | None,
            typer.Option("--site-domain", help="The site's own domain (repeatable); adds to LEADSTREAM_SITE_DOMAINS."),
        ] = None,
    ) -> None:
        """Print the channel › source › detail of one hit as JSON, with the rule that matched."""
        from ground.settings import get_settings
        from streams.taxonomy import TaxonomyError, load_taxonomy, touch_type_names

        valid = touch_type_names()
        if touch_type not in valid:
            raise typer.BadParameter(f"{touch_type!r} is not one of {', '.join(sorted(valid))}", param_hint="--type")
        settings = get_settings()
        try:
            rules = load_taxonomy(
                taxonomy if taxonomy is not None else settings.taxonomy_path,
                [*settings.site_domain_list, *(site_domain or [])],
            )
        except TaxonomyError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        result = rules.classify({"touch_type": touch_type, "url": url, "referrer": referrer})
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
