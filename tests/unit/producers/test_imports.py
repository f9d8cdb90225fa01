"""CSV imports: files that cannot be imported at all are refused before producing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.errors import CaptureError
from ground.settings import Settings
from producers.imports import count_rows, import_csv

# Nothing listens there: these files are refused before any event could be produced.
NO_BROKER = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", LEADSTREAM_TOPIC_PREFIX="unit-")


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    """A Latin-1 file is a clear CaptureError naming the row, and counting it does not crash."""
    path = tmp_path / "touches.csv"
    path.write_bytes(b"event_time,contact_id\n" + "2025-01-01,Müller\n".encode("latin-1"))
    assert count_rows(path) == 1
    with pytest.raises(CaptureError, match="not UTF-8"):
        import_csv("touches", path, NO_BROKER)


@pytest.mark.parametrize(("kind", "header", "missing"), [
    ("touches", "contact_id,type", "event_time"),
    ("touches", "event_time,type", "anonymous_id or contact_id"),
    ("deals", "event_time,deal_id,change", "primary_contact_id or contact_ids"),
    ("contacts", "event_time,contact_id", "change"),
    ("identities", "event_time,contact_id", "anonymous_id"),
])
def test_missing_required_columns(tmp_path: Path, kind: str, header: str, missing: str) -> None:
    """Each kind names the required column group that its header lacks."""
    path = tmp_path / f"{kind}.csv"
    path.write_text(header + "\n")
    with pytest.raises(CaptureError, match=missing):
        import_csv(kind, path, NO_BROKER)


def test_empty_file_and_unknown_kind(tmp_path: Path) -> None:
    """An empty file and an unknown import kind are refused with a clear message."""
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(CaptureError, match="empty file"):
        import_csv("touches", path, NO_BROKER)
    with pytest.raises(CaptureError, match="unknown import"):
        import_csv("leads", path, NO_BROKER)
