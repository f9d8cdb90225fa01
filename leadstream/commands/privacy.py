"""The privacy command: ``leadstream erase`` (request, status, apply).

An erasure takes two steps (docs/privacy.md): the request, which every worker and sink
honours within a second (the subject's events are dropped from then on, on every start
and replay), and the apply, which clears the derived state while the worker and the
sink are stopped, so that their next start rebuilds it from the raw topics without the
subject.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]

#: Columns ``--csv`` reads; at least one must be in the header.
CSV_COLUMNS = ("email", "contact_id")


def _read_csv(path: Path) -> tuple[list[str], list[str]]:
    """(emails, contact ids) of a CSV with an ``email`` and/or a ``contact_id`` column."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file", param_hint="--csv")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not set(CSV_COLUMNS) & set(reader.fieldnames):
            raise typer.BadParameter(f"{path} needs an email or a contact_id column", param_hint="--csv")
        emails, contacts = [], []
        for row in reader:
            if (row.get("email") or "").strip():
                emails.append(row["email"].strip())
            if (row.get("contact_id") or "").strip():
                contacts.append(row["contact_id"].strip())
    return emails, contacts


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status_rows() -> list[dict[str, Any]]:
    from ground.settings import get_settings
    from schemas.erasures import read_erasures

    log = read_erasures(get_settings())
    rows = []
    for erasure_id, request in sorted(log.requests.items(), key=lambda item: item[1]["at"]):
        steps = log.steps.get(erasure_id, {})
        rows.append({
            "erasure_id": erasure_id, "requested_at": request["at"], "contacts": request["contacts"],
            "anonymous_ids": request["anonymous_ids"],
            **{f"{step}_at": steps[step]["at"] if step in steps else None for step in ("worker", "sink", "rebuilt")},
        })
    return rows


def _print_status(fmt: str) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = _status_rows()
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("erasure id", "requested", "contacts", "anonymous ids", "worker drops since",
                  "sink drops since", "history rebuilt", title="erasures")
    for r in rows:
        table.add_row(r["erasure_id"], _when(r["requested_at"]), str(r["contacts"]), str(r["anonymous_ids"]),
                      _when(r["worker_at"]), _when(r["sink_at"]), _when(r["rebuilt_at"]))
    Console().print(table if rows else "no erasure requested")


def _request(emails: list[str], contact_ids: list[str], dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from ground.settings import get_settings
    from producers.erasure_requests import publish_requests, read_id_graph, resolve
    from schemas.erasures import ErasureKeys

    settings = get_settings()
    console = Console(stderr=True)
    ErasureKeys(settings.id_secret)  # refuse before reading anything when there is no secret
    with console.status("reading identities and contact changes") as status:
        graph = read_id_graph(settings, lambda topic, done, total: status.update(
            f"reading {topic}: {done:,} of {total:,}"))
    try:
        subjects = resolve(settings, graph, emails=emails, contact_ids=contact_ids)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--email") from exc
    table = Table("subject", "contact ids", "anonymous ids", title="resolved from the raw topics")
    for subject in subjects:
        table.add_row(subject.named, str(len(subject.contact_ids)), str(len(subject.anonymous_ids)))
    console.print(table)
    if dry_run:
        console.print("dry run: nothing published")
        return
    for erasure_id, subject in zip(publish_requests(settings, subjects), subjects, strict=True):
        typer.echo(f"{erasure_id}\t{subject.named}")
    console.print("requested: the worker and the sink drop these subjects' events within a second. "
                  "To remove what was derived from them before, stop the worker and the sink and run "
                  "`leadstream erase --apply`.")


def _apply(yes: bool, keep_raw: bool) -> None:
    from rich.console import Console

    from ground.settings import get_settings
    from leadstream.raw_rewrite import RawRewrite, RawRewriteError
    from leadstream.rebuild import clear_derived, plan_rebuild

    settings = get_settings()
    console = Console(stderr=True)
    plan = plan_rebuild(settings)
    console.print(f"clears {len(plan.topics)} derived topics, the consumer groups {', '.join(plan.groups)}, "
                  f"{plan.state_dir} and the ClickHouse database {plan.database} ({settings.clickhouse_url}); "
                  f"the next start of the worker and the sink rebuilds them from the raw topics without the "
                  f"{len(plan.erasures)} erased subject(s).")
    console.print("the raw topics are kept as they are (--keep-raw)" if keep_raw else
                  "first, each raw topic that holds a subject's events is rewritten without them: stop the "
                  "collector and every import before you go on")
    if not yes and not typer.confirm("go on?", err=True):
        raise typer.Exit(1)

    def rewritten(r: RawRewrite) -> None:
        if r.rewritten:
            dropped = "an interrupted rewrite resumed" if r.dropped < 0 else f"{r.dropped:,} events dropped"
            console.print(f"  {r.topic}: rewritten, {dropped}, {r.scrubbed:,} deals' contact ids replaced")
        else:
            console.print(f"  {r.topic}: holds none of the subjects' events, untouched")
        if r.undecodable:
            console.print(f"  {r.topic}: {r.undecodable:,} records are no leadstream record (not decodable): "
                          "kept as they were, not searched for the subjects")

    try:
        clear_derived(settings, plan, raw=not keep_raw, progress=rewritten)
    except RawRewriteError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print("cleared: start the worker and the sink (or `leadstream serve`) to rebuild.")


def register(app: typer.Typer) -> None:
    """Add ``leadstream erase`` to the root command."""

    @app.command("erase")
    def erase(  # noqa: PLR0917 - typer maps each option to a parameter
        email: Annotated[list[str] | None, typer.Option(
            "--email", help="Erase the person with this email (repeatable).")] = None,
        contact_id: Annotated[list[str] | None, typer.Option(
            "--contact-id", help="Erase this contact (repeatable).")] = None,
        csv_file: Annotated[Path | None, typer.Option(
            "--csv", help="CSV with an email and/or a contact_id column.")] = None,
        status: bool = typer.Option(False, "--status", help="Show every erasure request and its steps."),
        apply: bool = typer.Option(False, "--apply", help="Rewrite the raw topics without the erased subjects and "
                                   "clear the derived state, so that the next start rebuilds it without them "
                                   "(workers, sink, collector and imports stopped)."),
        keep_raw: bool = typer.Option(False, "--keep-raw", help="With --apply: leave the raw topics as they are "
                                      "(the subjects' events stay in them until their retention)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Resolve the subjects, publish nothing."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --apply clears anything."),
        fmt: str = typer.Option("table", "--format", "-f", help="--status output: table or json."),
    ) -> None:
        """Erase people: drop their events everywhere, then (--apply) rebuild what was derived from them.

        Subjects are resolved from the raw topics to all their ids and published as keyed hashes.
        """
        emails, contacts = list(email or []), list(contact_id or [])
        if csv_file is not None:
            more_emails, more_contacts = _read_csv(csv_file)
            emails += more_emails
            contacts += more_contacts
        if fmt not in {"table", "json"}:
            raise typer.BadParameter("table or json", param_hint="--format")
        if not (emails or contacts or status or apply):
            raise typer.BadParameter("name a subject (--email, --contact-id, --csv), or use --status or --apply")
        if emails or contacts:
            _request(emails, contacts, dry_run)
        if apply and not dry_run:
            _apply(yes, keep_raw)
        if status:
            _print_status(fmt)
