"""Offline imports: CSV files of touches, deals, contacts or identities -> raw topics.

``leadstream import touches scans.csv`` and friends. The CSV header names are the
field names of the JSON bodies (docs/capture.md lists each file's columns);
``contact_ids`` is ``;``-separated. Every row is validated like a webhook or API
call (``event_time`` required); a bad row is published to the dead-letter topic with
its file and row number as origin (``scans.csv:17``; row numbers as a spreadsheet
shows them: the header is row 1 and a blank line, which is skipped, still counts) and
the import goes on. Without ``event_id`` a
row gets a deterministic id derived from its content, so importing the same file
twice does not double count downstream.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ground.errors import CaptureError, SchemaError
from ground.settings import Settings
from ground.vocabulary import now_ms
from producers.dead_letters import DeadLetterPublisher, rejection
from producers.events import Rejected
from producers.kafka import EventProducer
from producers.privacy import Pseudonyms
from producers.publish import build_record

__all__ = ["IMPORT_KINDS", "REQUIRED_COLUMNS", "ImportResult", "RowError", "count_rows", "import_csv"]

#: ``leadstream import <name>`` -> event kind.
IMPORT_KINDS = {"touches": "touch", "deals": "deal", "contacts": "contact", "identities": "identify",
                "spend": "spend", "rates": "fx_rate"}
#: Columns a file must have (any one of each tuple); checked before anything is produced.
REQUIRED_COLUMNS: dict[str, list[tuple[str, ...]]] = {
    "touches": [("event_time",), ("anonymous_id", "contact_id")],
    "deals": [("event_time",), ("deal_id",), ("change",), ("primary_contact_id", "contact_ids")],
    "contacts": [("event_time",), ("change",), ("contact_id", "email")],
    "identities": [("event_time",), ("anonymous_id",), ("contact_id", "email")],
    "spend": [("date",), ("channel",), ("amount",)],
    "rates": [("date",), ("currency",), ("rate",)],
}


@dataclass(frozen=True)
class RowError:
    """One rejected row: its number (header = row 1), reason code and detail."""

    row: int
    reason: str
    detail: str


@dataclass
class ImportResult:
    """What an import did: rows accepted and the rows rejected (dead-lettered)."""

    file: Path
    kind: str
    accepted: int = 0
    rejected: list[RowError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + len(self.rejected)


def count_rows(path: Path) -> int:
    """Data rows in a CSV file (for the progress bar)."""
    # errors="replace": counting must not fail; import_csv reports an encoding problem.
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        try:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
        except csv.Error:
            return 0  # unreadable: import_csv says where


def import_csv(
    name: str,
    path: Path,
    settings: Settings,
    *,
    producer: EventProducer | None = None,
    on_row: Callable[[int], None] | None = None,
) -> ImportResult:
    """Publish every row of ``path`` as a ``name`` event (touches, deals, contacts, identities).

    Raises CaptureError for a file that cannot be imported at all (unknown kind, no
    header, required columns missing, not UTF-8); row problems are dead-lettered and
    returned in ``ImportResult.rejected``.
    """
    if name not in IMPORT_KINDS:
        raise CaptureError(f"unknown import {name!r}; one of {', '.join(IMPORT_KINDS)}")
    kind = IMPORT_KINDS[name]
    result = ImportResult(path, name)
    own = producer is None
    events = producer or EventProducer(settings)
    dead_letters = DeadLetterPublisher(events)
    row_number = 1  # as a spreadsheet numbers rows: the header is 1, a blank line is a row too
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise CaptureError(f"{path}: empty file, expected a header row")
            missing = [" or ".join(group) for group in REQUIRED_COLUMNS[name]
                       if not any(column in header for column in group)]
            if missing:
                raise CaptureError(f"{path}: missing column(s) {', '.join(missing)} for {name}")
            rows = _Rows(kind, header, path.name, events, dead_letters, result, Pseudonyms.of(settings.id_secret))
            for cells in reader:
                row_number += 1
                if not cells:
                    continue  # a blank line: no record, but it keeps its row number
                rows.take(row_number, cells)
                if on_row is not None:
                    on_row(row_number)
    except UnicodeDecodeError as exc:
        raise CaptureError(f"{path}: not UTF-8 after row {row_number} ({result.total} data rows before it "
                           "were imported or rejected, none after it)") from exc
    except csv.Error as exc:  # e.g. a cell over the csv module's field limit (131,072 characters)
        raise CaptureError(f"{path}: row {row_number + 1} cannot be read ({exc})") from exc
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read ({exc.strerror})") from exc
    finally:
        left = events.close() if own else events.flush()
        if left:
            raise CaptureError(f"{left} events were not acknowledged by the broker")
    return result


@dataclass
class _Rows:
    """Where the records of one file go: the raw topic, or the dead letters with their row number."""

    kind: str
    header: list[str]
    file_name: str
    events: EventProducer
    dead_letters: DeadLetterPublisher
    result: ImportResult
    ids: Pseudonyms

    def take(self, row_number: int, cells: list[str]) -> None:
        """Publish one record or dead-letter it; either way it is counted in the result."""
        header = self.header
        # a short row leaves its last columns absent (None), as if the cells were not there
        row: dict[str, object] = {column: (cells[i] if i < len(cells) else None) for i, column in enumerate(header)}
        extra = cells[len(header):]
        try:
            if extra:
                raise Rejected("too_many_cells", f"row has more cells than the header's {len(header)}")
            record = build_record(self.kind, {k: v for k, v in row.items() if k}, received_at=now_ms(),
                                  ids=self.ids, csv=True)
            self.events.send(self.kind, record)
            self.result.accepted += 1
        except (Rejected, SchemaError) as exc:
            code, detail = rejection(exc)
            self.result.rejected.append(RowError(row_number, code, detail))
            shown = {**row, "extra_cells": extra} if extra else row
            payload = json.dumps(shown, default=str, ensure_ascii=False).encode("utf-8", "surrogateescape")
            self.dead_letters.publish(stage="import", reason=code, detail=f"row {row_number}: {detail}",
                                      origin=f"{self.file_name}:{row_number}", payload=payload)
