"""Commands of the analytics layer: ``migrate``, ``sink``, ``query``, ``dashboard``, ``alerts``."""

from __future__ import annotations

import logging
import sys

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the root command."""

    @app.command("migrate")
    def migrate() -> None:
        """Apply the ClickHouse migrations (idempotent; cluster variant with LEADSTREAM_CLICKHOUSE_CLUSTER)."""
        from ground.settings import get_settings
        from sinks.clickhouse import connect
        from sinks.migrate import apply_migrations

        settings = get_settings()
        db = connect(settings)
        try:
            applied = apply_migrations(db, settings.clickhouse_cluster)
        finally:
            db.close()
        where = f"{settings.clickhouse_url} database {settings.clickhouse_database}"
        typer.echo(f"applied {', '.join(applied)} on {where}" if applied else f"up to date: {where}")

    @app.command("sink")
    def sink() -> None:
        """Write the enriched topics into ClickHouse (and serve the query API in embedded mode)."""
        from ground.settings import get_settings
        from sinks.service import SinkService

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = get_settings()
        service = SinkService(settings)
        if service.serve_api:
            typer.echo(f"sink: {settings.clickhouse_url} database {settings.clickhouse_database}; "
                       f"query API on http://{settings.query_host}:{settings.query_port}", err=True)
        service.serve_forever()

    @app.command("dashboard")
    def dashboard(
        host: str = typer.Option(None, help="address to listen on (default LEADSTREAM_QUERY_HOST)"),
        port: int = typer.Option(None, help="port (default LEADSTREAM_QUERY_PORT)"),
    ) -> None:
        """Serve the live dashboard (and the query API) against a ClickHouse server, without a sink."""
        from ground.errors import LeadstreamError
        from ground.settings import get_settings
        from sinks.api_server import AlreadyServedError, serve_query_api
        from sinks.errors import QueryTokenError

        settings = get_settings()
        updates = {k: v for k, v in (("query_host", host), ("query_port", port)) if v is not None}
        settings = settings.model_copy(update=updates)
        typer.echo(f"dashboard: http://{settings.query_host}:{settings.query_port}/dashboard "
                   f"({settings.clickhouse_url}, database {settings.clickhouse_database})", err=True)
        try:
            serve_query_api(settings)
        except AlreadyServedError as exc:
            typer.echo(str(exc), err=True)
        except QueryTokenError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except LeadstreamError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    alerts_app = typer.Typer(help="Quality alerts: the rules of LEADSTREAM_ALERT_RULES (or the shipped ones).",
                             no_args_is_help=True)
    app.add_typer(alerts_app, name="alerts")

    @alerts_app.command("check")
    def alerts_check(
        format: str = typer.Option("table", "--format", "-f", help="table or json"),
    ) -> None:
        """Evaluate the alert rules now; print the firing alerts with their evidence; exit 1 when any fires.

        In embedded mode the running sink evaluates them (its engine, its rules file); with no sink
        serving, the idle engine is read directly; against a ClickHouse server, here.
        """
        import json as json_module

        from rich.console import Console
        from rich.table import Table

        from ground.errors import LeadstreamError
        from ground.settings import get_settings
        from sinks.alerts import AlertRulesError
        from sinks.query_client import fetch_alerts

        if format not in {"table", "json"}:
            typer.echo("--format must be table or json", err=True)
            raise typer.Exit(2)
        try:
            answer = fetch_alerts(get_settings())
        except AlertRulesError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except LeadstreamError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from exc
        alerts = answer["alerts"]
        if format == "json":
            sys.stdout.write(json_module.dumps(answer, indent=2, default=str) + "\n")
        elif not alerts:
            typer.echo("no alert fires")
        else:
            table = Table("rule", "subject", "value", "threshold", "window", "evidence", title="firing alerts")
            for a in alerts:
                value = "-" if a["value"] is None else f"{a['value']:.4g}"
                table.add_row(a["rule"], a["subject"], value, f"{a['threshold']:.4g}", a["window"], a["message"])
            Console(width=200).print(table)
        raise typer.Exit(1 if alerts else 0)

    @app.command("query")
    def query(  # noqa: PLR0917 - typer maps each option to a parameter
        report: str = typer.Argument(..., help="sources, quarterly, funnel, contact-sources, rep-sources, "
                                                "attribution, quality, lead-scores, roi"),
        since: str = typer.Option(None, help="ISO date (UTC), inclusive"),
        until: str = typer.Option(None, help="ISO date (UTC), exclusive"),
        by: str = typer.Option("channel", help="channel, source or detail"),
        format: str = typer.Option("table", "--format", "-f", help="table, csv or json"),
        model: str = typer.Option("linear", help="attribution model: first_touch, last_touch, linear, u_shaped, "
                                                  "w_shaped, full_path, time_decay, j_shaped, inverse_j"),
        half_life: float = typer.Option(7.0, help="time_decay half-life in days"),
        include_open_lost: bool = typer.Option(False, help="attribution: give deal credit for open and lost deals"),
        top: int = typer.Option(20, help="lead-scores: how many leads; quality: how many rows per list"),
        by_quarter: bool = typer.Option(False, "--by-quarter", help="roi: one row per quarter and lead source"),
    ) -> None:
        """Run a report (REPORT lists them) and print it as a table, CSV or JSON."""
        from ground.errors import LeadstreamError
        from ground.settings import get_settings
        from sinks.errors import ReportError
        from sinks.query_client import fetch_report, render
        from sinks.report_params import ReportParams
        from sinks.reports import check_report

        if format not in {"table", "csv", "json"}:
            typer.echo("--format must be table, csv or json", err=True)
            raise typer.Exit(2)
        try:
            check_report(report)
        except ReportError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        try:
            # the CLI edge: the options become the typed parameters here, once
            params = ReportParams.from_options(since=since, until=until, by=by, model=model, half_life=half_life,
                                               include_open_lost=include_open_lost, top=top,
                                               by_quarter=by_quarter)
            result = fetch_report(get_settings(), report, params)
        except (ReportError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except LeadstreamError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        sys.stdout.write(render(report, result, format))
