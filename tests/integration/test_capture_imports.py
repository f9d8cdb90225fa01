"""CSV imports, the Python publishers and ``leadstream dlq tail`` against the real broker."""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ground.errors import CaptureError
from ground.settings import Settings
from leadstream.testing.processes import settings_env
from producers import DealPublisher, Rejected, TouchPublisher
from producers.imports import import_csv
from tests.support.capture import count, read_all

pytestmark = pytest.mark.integration

LEADSTREAM = str(Path(sys.executable).parent / "leadstream")  # the console script of this venv

TOUCH_COLUMNS = ["event_id", "event_time", "anonymous_id", "contact_id", "type", "url", "utm_source",
                 "utm_medium", "utm_campaign", "booth"]


def _write(path: Path, columns: list[str], rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _touch_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"event_id": str(uuid.uuid4()), "event_time": f"2025-03-{1 + i % 28:02d}T09:{i % 60:02d}:00Z",
         "contact_id": f"C-{i}", "type": "event_scan", "utm_source": "saastr", "utm_medium": "event",
         "utm_campaign": "booth-2025", "booth": "B12"}
        for i in range(100)]
    rows[16]["event_time"] = "yesterday-ish"          # row 18 of the file (header is row 1)
    rows[72]["contact_id"] = ""                         # row 74: nobody to attribute the touch to
    return rows


def test_import_100_touches_with_2_bad_rows_via_cli(topics: Settings, tmp_path: Path) -> None:
    """`leadstream import touches` publishes 98 touches and dead-letters rows 18 and 74 with reasons."""
    path = _write(tmp_path / "scans.csv", TOUCH_COLUMNS, _touch_rows())
    run = subprocess.run([LEADSTREAM, "import", "touches", str(path)],
                         env=settings_env(topics), capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 3, run.stderr  # 3: some rows were rejected (and dead-lettered)
    assert "98 of 100 rows published" in run.stderr
    touches = read_all(topics, "touches", at_least=98)
    assert len(touches) == 98
    assert {m.key for m in touches} == {f"C-{i}" for i in range(100)} - {"C-16", "C-72"}
    sample = next(m.record for m in touches if m.key == "C-0")
    assert sample["touch_type"] == "event_scan" and sample["utm_source"] == "saastr"
    assert sample["properties"] == {"booth": "B12"} and sample["anonymous_id"] is None
    dead = sorted(read_all(topics, "dead-letter", at_least=2), key=lambda m: m.record["origin"])
    assert [m.record["origin"] for m in dead] == ["scans.csv:18", "scans.csv:74"]
    assert [m.record["reason"] for m in dead] == ["invalid_event_time", "missing_field"]
    assert all(m.record["stage"] == "import" for m in dead)
    assert "row 18" in dead[0].record["detail"] and b"yesterday-ish" in dead[0].record["payload"]

    tail = subprocess.run([LEADSTREAM, "dlq", "tail", "-n", "5"],
                          env=settings_env(topics), capture_output=True, text=True, timeout=120, check=True)
    assert "invalid_event_time" in tail.stdout and "scans.csv:18" in tail.stdout
    assert "missing_field" in tail.stdout and "scans.csv:74" in tail.stdout


def test_import_deals_contacts_identities(topics: Settings, tmp_path: Path) -> None:
    """Each import kind lands on its topic with its key; ';'-separated contact ids are split."""
    deals = _write(tmp_path / "deals.csv", ["event_time", "deal_id", "change", "stage", "amount", "currency",
                                            "owner", "primary_contact_id", "contact_ids", "pipeline", "version"],
                   [{"event_time": "2025-04-01T12:00:00Z", "deal_id": "D-1", "change": "created",
                     "stage": "Discovery", "amount": "5000", "currency": "USD", "owner": "Ana",
                     "primary_contact_id": "C-1", "contact_ids": "C-1;C-2", "pipeline": "nb", "version": "1"},
                    {"event_time": "2025-05-01T12:00:00Z", "deal_id": "D-1", "change": "won", "stage": "Won",
                     "amount": "5500", "currency": "USD", "owner": "Ana", "primary_contact_id": "C-1",
                     "contact_ids": "C-1;C-2", "pipeline": "nb", "version": "2"}])
    contacts = _write(tmp_path / "contacts.csv", ["event_time", "contact_id", "change", "contact_source", "owner",
                                                  "lifecycle_stage", "merged_into", "email", "region"],
                      [{"event_time": "2025-03-01T08:00:00Z", "contact_id": "C-1", "change": "created",
                        "contact_source": "Purchased list", "owner": "Ana", "lifecycle_stage": "lead",
                        "email": "c1@example.com", "region": "EMEA"}])
    identities = _write(tmp_path / "identities.csv", ["event_time", "anonymous_id", "contact_id", "email", "source"],
                        [{"event_time": "2025-03-01T08:05:00Z", "anonymous_id": "anon-9", "email": "c1@example.com",
                          "source": "webinar-tool"}])
    assert import_csv("deals", deals, topics).accepted == 2
    assert import_csv("contacts", contacts, topics).accepted == 1
    assert import_csv("identities", identities, topics).accepted == 1
    deal_msgs = read_all(topics, "deals", at_least=2)
    assert {m.key for m in deal_msgs} == {"D-1"} and len({m.partition for m in deal_msgs}) == 1
    assert sorted(m.record["version"] for m in deal_msgs) == [1, 2]
    assert all(m.record["contact_ids"] == ["C-1", "C-2"] for m in deal_msgs)
    [contact] = read_all(topics, "contacts", at_least=1)
    assert contact.record["contact_source"] == "Purchased list" and contact.record["properties"] == {"region": "EMEA"}
    [link] = read_all(topics, "identities", at_least=1)
    assert link.key == "anon-9" and link.record["contact_id"].startswith("email:")
    assert link.record["source_system"] == "webinar-tool"
    assert count(topics, "dead-letter") == 0


def test_reimport_gives_the_same_event_ids(topics: Settings, tmp_path: Path) -> None:
    """Rows without event_id get content-derived ids: importing twice is de-duplicable downstream."""
    path = _write(tmp_path / "calls.csv", ["event_time", "contact_id", "type"],
                  [{"event_time": "2025-02-02T10:00:00Z", "contact_id": "C-5", "type": "inbound_call"}])
    import_csv("touches", path, topics)
    import_csv("touches", path, topics)
    ids = [m.record["event_id"] for m in read_all(topics, "touches", at_least=2)]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_file_missing_required_columns_is_refused(topics: Settings, tmp_path: Path) -> None:
    """A deals file without deal_id is refused as a whole, before anything is produced."""
    path = _write(tmp_path / "bad.csv", ["event_time", "change"], [{"event_time": "2025-01-01", "change": "won"}])
    with pytest.raises(CaptureError, match="deal_id"):
        import_csv("deals", path, topics)
    assert count(topics, "deals") == 0 and count(topics, "dead-letter") == 0


def test_python_publishers(topics: Settings) -> None:
    """DealPublisher/TouchPublisher produce valid input and dead-letter + raise on invalid input."""
    with DealPublisher(topics) as deals:
        deals.publish({"deal_id": "D-9", "change": "lost", "event_time": 1_740_000_000_000,
                       "primary_contact_id": "C-9", "close_reason": "budget"})
        with pytest.raises(Rejected) as info:
            deals.publish({"deal_id": "D-9", "change": "lost", "event_time": 1_740_000_000_000,
                           "primary_contact_id": "C-9", "amount": -5})
        assert info.value.code == "invalid_amount"
    with TouchPublisher(topics) as touches:
        touches.publish({"contact_id": "C-9", "type": "outbound_call", "event_time": "2025-02-19T10:00:00Z"})
    [deal] = read_all(topics, "deals", at_least=1)
    assert deal.key == "D-9" and deal.record["close_reason"] == "budget"
    [touch] = read_all(topics, "touches", at_least=1)
    assert touch.key == "C-9" and touch.record["touch_type"] == "outbound_call"
    [dead] = read_all(topics, "dead-letter", at_least=1)
    assert dead.record["stage"] == "api" and dead.record["reason"] == "invalid_amount"


def test_rows_keep_their_spreadsheet_numbers_across_blank_lines(topics: Settings, tmp_path: Path) -> None:
    """A blank line is skipped but is a row of the sheet: the bad row after it is row 4, not 3."""
    path = tmp_path / "gaps.csv"
    path.write_text("event_time,contact_id,type\n2025-01-01T00:00:00Z,C-1,inbound_call\n\n"
                    "2025-01-02T00:00:00Z,,inbound_call\n2025-01-03T00:00:00Z,C-3,inbound_call,extra\n")
    result = import_csv("touches", path, topics)
    assert result.accepted == 1 and [(e.row, e.reason) for e in result.rejected] == [
        (4, result.rejected[0].reason), (5, "too_many_cells")]
    letters = read_all(topics, "dead-letter", at_least=2)
    assert sorted(str(m.record["origin"]) for m in letters) == ["gaps.csv:4", "gaps.csv:5"]


def test_import_spend_and_rates_via_cli(topics: Settings, tmp_path: Path) -> None:
    """`leadstream import spend` / `rates`: good rows on their topics, bad rows dead-lettered with a reason."""
    spend = _write(tmp_path / "spend.csv", ["date", "channel", "source", "campaign", "amount", "currency"], [
        {"date": "2025-05-01", "channel": "Paid Search", "source": "google", "campaign": "brand", "amount": "1250.5",
         "currency": "USD"},
        {"date": "2025-05-02", "channel": "Paid Social", "source": "linkedin", "campaign": "q2", "amount": "980",
         "currency": "eur"},
        {"date": "someday", "channel": "Email", "source": "newsletter", "campaign": "", "amount": "10",
         "currency": "USD"},
        {"date": "2025-05-02", "channel": "Email", "source": "newsletter", "campaign": "", "amount": "-3",
         "currency": "USD"},
    ])
    rates = _write(tmp_path / "rates.csv", ["date", "currency", "rate"], [
        {"date": "2025-05-01", "currency": "EUR", "rate": "1.08"},
        {"date": "2025-05-01", "currency": "GBP", "rate": "0"},
    ])
    for name, path, published in (("spend", spend, "2 of 4 rows published"), ("rates", rates, "1 of 2 rows")):
        run = subprocess.run([LEADSTREAM, "import", name, str(path)], env=settings_env(topics),
                             capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 3 and published in run.stderr, run.stderr
    rows = sorted((m.record for m in read_all(topics, "spend", at_least=2)), key=lambda r: r["event_time"])
    assert [(r["channel"], r["amount"], r["currency"]) for r in rows] == [("Paid Search", 1250.5, "USD"),
                                                                         ("Paid Social", 980.0, "EUR")]
    [rate] = read_all(topics, "fx-rates", at_least=1)
    assert rate.key == "EUR" and rate.record["rate"] == 1.08
    reasons = sorted(m.record["reason"] for m in read_all(topics, "dead-letter", at_least=3))
    assert reasons == ["invalid_amount", "invalid_date", "invalid_rate"]
