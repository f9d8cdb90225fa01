"""Property-based fuzzing of ``leadstream import`` (every kind) against the real broker.

Hypothesis writes CSV files of touches, deals, contacts and identities mixing valid rows
with malformed ones (wrong cell counts, bad quoting, NUL, huge cells, values of any
shape, blank lines), and whole-file problems (missing required columns, empty files,
a BOM, bytes that are not UTF-8, a JSON document instead of CSV). Each file goes through
the command's own entry point (``leadstream.cli.main``, in-process, with a timeout as
hang guard); one more test runs the installed console script on a hostile file per kind.

Checked per file: the exit code (0 all published, 3 some rejected, 2 file refused) with
a one-line ``error:`` and never a traceback; the summary's row total equals the rows
written; and at the end, read back from the topics, rows published + rows dead-lettered
= rows in the files (for a file that is not UTF-8: the rows before the point the import
says it stopped at). Valid rows must be on the raw topic (by event id); dead letters
name their file and only rows written as malformed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ground.settings import Settings, get_settings
from leadstream.testing.processes import settings_env
from tests.support.capture import all_topic_counts, read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TIMEOUT_S = 60.0  # the hang guard of one import
LEADSTREAM = str(Path(sys.executable).parent / "leadstream")
KINDS = {"touches": "touches", "deals": "deals", "contacts": "contacts", "identities": "identities",
         "spend": "spend", "rates": "fx-rates"}
#: Required columns per kind as docs/capture.md lists them (any one of each group).
REQUIRED = {
    "touches": [("event_time",), ("anonymous_id", "contact_id")],
    "deals": [("event_time",), ("deal_id",), ("change",), ("primary_contact_id", "contact_ids")],
    "contacts": [("event_time",), ("change",), ("contact_id", "email")],
    "identities": [("event_time",), ("anonymous_id",), ("contact_id", "email")],
    "spend": [("date",), ("channel",), ("amount",)],
    "rates": [("date",), ("currency",), ("rate",)],
}
COLUMNS = {
    "touches": ["event_id", "event_time", "contact_id", "anonymous_id", "type", "url", "utm_source", "booth"],
    "deals": ["event_id", "event_time", "deal_id", "change", "amount", "currency", "primary_contact_id",
              "contact_ids", "version", "stage"],
    "contacts": ["event_id", "event_time", "contact_id", "change", "contact_source", "lifecycle_stage", "email",
                 "region"],
    "identities": ["event_id", "event_time", "anonymous_id", "contact_id", "email", "source"],
    "spend": ["event_id", "date", "channel", "source", "campaign", "amount", "currency"],
    "rates": ["event_id", "date", "currency", "rate"],
}
#: Columns a valid row does without (dropping one of them leaves every valid row valid).
OPTIONAL = {"touches": ["utm_source", "booth", "url"], "deals": ["currency", "stage", "version"],
            "contacts": ["contact_source", "region", "email"], "identities": ["source", "email"],
            "spend": ["source", "campaign", "currency"], "rates": []}
# derandomize: the same 30 files on every run, so that CI judges the code, not the draw
FUZZ = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

ID = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x7F), min_size=1, max_size=30)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() != "")
EPOCH_MS = st.integers(1_577_836_800, 1_735_689_600).map(
    lambda s: f"{s}000")  # epoch ms as text, the other accepted spelling
ISO_OR_MS = st.one_of(EPOCH_MS, st.sampled_from(["2025-03-04T10:15:00Z", "2024-12-31T23:59:59+02:00",
                                                 "2023-01-01 08:00:00"]))
# Cells over the csv module's field limit (131,072 characters) stop the import with a clear error:
# test_import_cell_over_the_field_limit; here huge cells stay at or below 100,000 characters.
HUGE_CELL = st.sampled_from([256, 1024, 1025, 4097, 20_000, 100_000]).map(lambda n: "x" * n)
HOSTILE_CELL = st.one_of(
    st.text(max_size=30).map(lambda s: s.replace("\r", "").replace("\n", "").replace("\ud800", "?")),
    HUGE_CELL,
    st.sampled_from(["", " ", "\x00", "nope", "yesterday-ish", "1999-01-01", "9999-12-31", "-1", "1e999", "NaN",
                     "12,500.50", "ftp://nope", "https://example.com/?utm_source=x", "a@b", "x@example.com",
                     "merge", "won", "created", "page_view", "EURO", "C-1;;C-2", "9" * 25, "\ufeff", "é" * 300]),
)


def valid_row(kind: str) -> st.SearchStrategy[dict[str, str]]:
    common = {"event_id": st.uuids().map(str), "event_time": ISO_OR_MS}
    if kind == "touches":
        return st.fixed_dictionaries({**common, "contact_id": ID,
                                      "type": st.sampled_from(["event_scan", "inbound_call", "webinar_attended",
                                                               "direct_mail_response", "outbound_email"])},
                                     optional={"utm_source": ID, "booth": TEXT, "anonymous_id": ID})
    if kind == "deals":
        return st.fixed_dictionaries({**common, "deal_id": ID, "change": st.sampled_from(["created", "won", "lost"]),
                                      "primary_contact_id": ID},
                                     optional={"amount": st.sampled_from(["0", "5000", "12,500.50", "1e6"]),
                                               "currency": st.sampled_from(["USD", "eur"]),
                                               "contact_ids": st.lists(ID, max_size=3).map(";".join),
                                               "version": st.integers(0, 99).map(str), "stage": TEXT})
    if kind == "contacts":
        return st.fixed_dictionaries({**common, "contact_id": ID, "change": st.sampled_from(["created", "updated"])},
                                     optional={"contact_source": TEXT, "region": TEXT,
                                               "lifecycle_stage": st.sampled_from(["lead", "MQL", "customer"])})
    if kind == "spend":
        return st.fixed_dictionaries({"event_id": st.uuids().map(str), "date": ISO_OR_MS, "channel": TEXT,
                                      "amount": st.sampled_from(["0", "12.5", "1,250.50", "99999"])},
                                     optional={"source": ID, "campaign": TEXT,
                                               "currency": st.sampled_from(["USD", "eur", "GBP"])})
    if kind == "rates":
        return st.fixed_dictionaries({"event_id": st.uuids().map(str), "date": ISO_OR_MS,
                                      "currency": st.sampled_from(["EUR", "gbp", "JPY"]),
                                      "rate": st.sampled_from(["1.08", "0.0067", "1,2"]).filter(lambda r: r != "1,2")})
    return st.fixed_dictionaries({**common, "anonymous_id": ID, "contact_id": ID}, optional={"source": TEXT})


def _line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


@dataclass
class CsvCase:
    """A generated file and what it must do."""

    data: bytes
    rows: int  # records written (blank lines are not records)
    refused: bool  # no header or a required column missing: nothing imported
    bad_byte_after: int | None  # bytes that are not UTF-8 sit in this data row (1-based)
    valid_ids: list[str] = field(default_factory=list)
    hostile_rows: list[int] = field(default_factory=list)  # spreadsheet row numbers (header = 1)
    blank_lines: int = 0  # blank lines after the header: no records, but spreadsheet rows


@st.composite
def csv_case(draw: st.DrawFn, kind: str) -> CsvCase:
    shape = draw(st.sampled_from(["rows"] * 6 + ["missing-column", "empty", "header-only", "json", "not-utf8",
                                                 "unterminated-quote"]))
    if shape == "empty":
        return CsvCase(draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\n\n", b"   "])), 0, True, None)
    header = draw(st.permutations(COLUMNS[kind]))
    drop = draw(st.sampled_from([None, *OPTIONAL[kind]]))
    if shape == "missing-column":
        drop = draw(st.sampled_from([c for group in REQUIRED[kind] if len(group) == 1 for c in group]))
    header = [c for c in header if c != drop] + draw(st.lists(st.sampled_from(["zz", "note", " padded "]),
                                                               max_size=2, unique=True))
    refused = any(not any(c in [h.strip() for h in header] for c in group) for group in REQUIRED[kind])
    if shape == "json":  # a JSON export handed to the CSV import: refused, nothing produced
        rows = [draw(valid_row(kind)) for _ in range(draw(st.integers(1, 3)))]
        return CsvCase(json.dumps(rows).encode(), 0, True, None)
    text = ("\ufeff" if draw(st.booleans()) else "") + _line(header)
    case = CsvCase(b"", 0, refused, None)
    count = 0 if shape == "header-only" else draw(st.integers(1, 12))
    for _ in range(count):
        if draw(st.booleans()):
            row = draw(valid_row(kind))
            text += _line([row.get(c.strip(), "") for c in header])
            case.valid_ids.append(row["event_id"])
        else:
            cells = [draw(HOSTILE_CELL) for _ in range(max(len(header) + draw(st.integers(-3, 2)), 1))]
            style = draw(st.sampled_from(["quoted", "raw", "bad-quotes"]))
            if style == "quoted":
                text += _line(cells)
            elif style == "raw":
                text += ",".join(c.replace('"', "").replace(",", ";") for c in cells) + "\n"
            else:  # quotes in the middle of unquoted cells and text after a closing quote
                text += ",".join(f'"{c.replace(chr(34), "")}"x' if i % 2 else f'a"{c.replace(chr(34), "")}'
                                 for i, c in enumerate(cells)) + "\n"
            case.hostile_rows.append(case.rows + case.blank_lines + 2)
        case.rows += 1
        if draw(st.integers(0, 5)) == 0:
            text += "\n"
            case.blank_lines += 1
    if shape == "unterminated-quote":  # the last record opens a quote and never closes it
        text += '"' + draw(HOSTILE_CELL).replace('"', "") + "\n,,\n"
        case.hostile_rows.append(case.rows + case.blank_lines + 2)
        case.rows += 1
    data = text.encode("utf-8")
    if shape == "not-utf8" and count:
        target = draw(st.integers(1, count))  # inside this data row: after its record's first line
        lines = data.split(b"\n")
        physical = [i for i, line in enumerate(lines) if line][target]  # header is physical line 0
        lines[physical] = lines[physical] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"]))
        data = b"\n".join(lines)
        case.bad_byte_after = target
        case.valid_ids = []
    case.data = data
    return case


#: One valid row per kind, as docs/capture.md documents the columns.
FIXED_ROWS = {
    "touches": {"event_id": "6f1c7a8e-0000-4000-8000-000000000001", "event_time": "2025-03-04T10:15:00Z",
                "contact_id": "C-1", "type": "event_scan"},
    "deals": {"event_id": "6f1c7a8e-0000-4000-8000-000000000002", "event_time": "2025-03-04T10:15:00Z",
              "deal_id": "D-1", "change": "won", "primary_contact_id": "C-1", "amount": "5000"},
    "contacts": {"event_id": "6f1c7a8e-0000-4000-8000-000000000003", "event_time": "2025-03-04T10:15:00Z",
                 "contact_id": "C-1", "change": "created"},
    "identities": {"event_id": "6f1c7a8e-0000-4000-8000-000000000004", "event_time": "2025-03-04T10:15:00Z",
                   "anonymous_id": "a-1", "contact_id": "C-1"},
    "spend": {"event_id": "6f1c7a8e-0000-4000-8000-000000000005", "date": "2025-03-04", "channel": "Email",
              "amount": "12.5"},
    "rates": {"event_id": "6f1c7a8e-0000-4000-8000-000000000006", "date": "2025-03-04", "currency": "EUR",
              "rate": "1.08"},
}


def _one_valid_row(kind: str) -> CsvCase:
    row = FIXED_ROWS[kind]
    return CsvCase((_line(list(row)) + _line(list(row.values()))).encode(), 1, False, None,
                   valid_ids=[row["event_id"]])


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def run_import(topics: Settings, kind: str, path: Path) -> tuple[int, str]:
    """``leadstream import KIND PATH`` through the command's entry point: (exit code, stderr)."""
    from leadstream.cli import main

    outcome: dict[str, Any] = {}

    def target() -> None:
        stderr = io.StringIO()
        argv = sys.argv
        sys.argv = ["leadstream", "import", kind, str(path)]
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                main()
            outcome["code"] = 0
        except SystemExit as exc:
            outcome["code"] = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # what would reach the user as a traceback
            outcome["error"] = exc
        finally:
            sys.argv = argv
            outcome["stderr"] = stderr.getvalue()

    with _environment(settings_env(topics)):
        thread = threading.Thread(target=target, name="fuzz-import", daemon=True)
        thread.start()
        thread.join(TIMEOUT_S)
    assert not thread.is_alive(), f"leadstream import {kind} {path.name} did not finish within {TIMEOUT_S}s"
    assert "error" not in outcome, f"traceback: {outcome.get('error')!r} on {path.read_bytes()[:300]!r}"
    return int(outcome["code"]), str(outcome["stderr"])


SUMMARY = re.compile(r"(\S+): (\d+) of (\d+) rows published, (\d+) rejected")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_import_fuzz(topics: Settings, tmp_path: Path, kind: str) -> None:
    """Any CSV file: a clear exit, and rows published + dead-lettered = rows in the file."""
    expected_total = 0
    published = 0
    dead_per_file: dict[str, int | None] = {}  # None: known only from the topic (import stopped early)
    stopped_after: dict[str, int] = {}
    valid_ids: set[str] = set()
    hostile_rows: dict[str, set[int]] = {}
    exits: Counter[int] = Counter()

    @FUZZ
    @given(csv_case(kind))
    @example(CsvCase(b"", 0, True, None))  # always one file refused outright, whatever the draws
    @example(_one_valid_row(kind))  # and one accepted row
    def one_file(case: CsvCase) -> None:
        nonlocal expected_total, published
        path = tmp_path / f"{kind}-{len(dead_per_file)}.csv"
        path.write_bytes(case.data)
        code, stderr = run_import(topics, kind, path)
        exits[code] += 1
        assert "Traceback" not in stderr, stderr
        if case.refused:
            assert code == 2 and "error:" in stderr, (code, stderr)
            dead_per_file[path.name] = 0
            return
        if case.bad_byte_after is not None:
            assert code == 2 and "not UTF-8" in stderr, (code, stderr)
            match = re.search(r"not UTF-8 after row (\d+) \((\d+) data rows before it", " ".join(stderr.split()))
            assert match, stderr
            handled = int(match.group(2))
            assert handled <= int(match.group(1)) - 1, stderr
            assert handled <= case.bad_byte_after - 1, (handled, case.bad_byte_after)
            stopped_after[path.name] = handled
            dead_per_file[path.name] = None
            expected_total += handled
            return
        match = SUMMARY.search(" ".join(stderr.split()))
        assert match, stderr
        accepted, total, rejected = int(match.group(2)), int(match.group(3)), int(match.group(4))
        assert total == case.rows and accepted + rejected == total, (match.group(0), case.rows)
        assert code == (3 if rejected else 0), (code, stderr)
        expected_total += case.rows
        published += accepted
        dead_per_file[path.name] = rejected
        valid_ids.update(case.valid_ids)
        hostile_rows[path.name] = set(case.hostile_rows)

    one_file()
    counts = all_topic_counts(topics)
    raw = counts[KINDS[kind]]
    others = {t: n for t, n in counts.items() if t not in (KINDS[kind], "dead-letter")}
    assert set(others.values()) == {0}, others
    dead = read_all(topics, "dead-letter", at_least=counts["dead-letter"])
    assert len(dead) == counts["dead-letter"]
    assert raw + len(dead) == expected_total, f"{raw} published + {len(dead)} dead-lettered != {expected_total} rows"
    by_file = Counter(str(d.record["origin"]).rsplit(":", 1)[0] for d in dead)
    assert set(by_file) <= set(dead_per_file), by_file
    for name, rejected in dead_per_file.items():
        if rejected is not None:
            assert by_file[name] == rejected, (name, by_file[name], rejected)
    early = sum(stopped_after.values()) - sum(by_file[name] for name in stopped_after)
    assert raw == published + early, (raw, published, early)
    for letter in dead:
        name, row = str(letter.record["origin"]).rsplit(":", 1)
        assert letter.record["stage"] == "import" and letter.record["reason"], letter.record
        if name in hostile_rows:
            assert int(row) in hostile_rows[name], (name, row, sorted(hostile_rows[name]))
    ids = {str(m.record["event_id"]) for m in read_all(topics, KINDS[kind], at_least=raw)}
    assert valid_ids <= ids, sorted(valid_ids - ids)[:5]
    assert valid_ids and exits[2] and (exits[0] or exits[3]), exits


HOSTILE_FILES = {
    "touches": 'event_time,contact_id,type,booth\n1735689600000,C-1,event_scan,B1\nyesterday,C-2,x,"a"b\n'
               ',,,,,\n\x00,C-3,chat,\n1735689600000,"C-4\nwith newline",event_scan,"unterminated\n',
    "deals": "event_time,deal_id,change,amount,primary_contact_id\n1735689600000,D-1,won,5000,C-1\n"
             "1735689600000,D-2,won,-5,C-1\n1735689600000,D-3,exploded,1,C-1,extra\n" + "x" * 100_000 + ",,,,\n",
    "contacts": "\ufeffevent_time,contact_id,change\n1735689600000,C-1,created\n1735689600000,C-2,merge\n"
                '1735689600000,C-3,"created"x\n',
    "identities": "event_time,anonymous_id,email\n1735689600000,a-1,x@example.com\n1735689600000,,nobody\n",
    "spend": "date,channel,amount,currency\n2025-01-01,Email,10,USD\nsoon,Email,10,USD\n2025-01-01,,10,USD\n"
             "2025-01-01,Email,-4,USD\n2025-01-01,Email,1e999,USD\n2025-01-01,Email,5,EURO\n",
    "rates": "date,currency,rate\n2025-01-01,EUR,1.1\n2025-01-01,EUR,0\n2025-01-01,,1.2\n2025-01-01,EUR,NaN\n"
             "9999-12-31,EUR,1\n",
}
HOSTILE_COUNTS = {"touches": (2, 5), "deals": (1, 4), "contacts": (1, 3), "identities": (1, 2), "spend": (1, 6),
                  "rates": (1, 5)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_import_console_script_on_a_hostile_file(topics: Settings, tmp_path: Path, kind: str) -> None:
    """The installed command on a file with every kind of bad row: exit 3, a summary, no traceback."""
    path = tmp_path / f"hostile-{kind}.csv"
    path.write_bytes(HOSTILE_FILES[kind].encode())
    run = subprocess.run([LEADSTREAM, "import", kind, str(path)], env=settings_env(topics), capture_output=True,
                         text=True, timeout=120, check=False)
    assert "Traceback" not in run.stderr, run.stderr
    accepted, total = HOSTILE_COUNTS[kind]
    assert run.returncode == 3, run.stderr
    assert f"{accepted} of {total} rows published" in " ".join(run.stderr.split()), run.stderr
    counts = all_topic_counts(topics)
    assert counts[KINDS[kind]] == accepted and counts["dead-letter"] == total - accepted, counts


def test_import_cell_over_the_field_limit(topics: Settings, tmp_path: Path) -> None:
    """A cell past the csv module's 131,072-character limit: exit 2 naming the row, rows before it kept."""
    path = tmp_path / "huge-cell.csv"
    path.write_text("event_time,contact_id\n1735689600000,C-1\n" + "x" * 140_000 + ",C-2\n")
    code, stderr = run_import(topics, "touches", path)
    assert code == 2, stderr
    assert "row 3 cannot be read" in " ".join(stderr.split()), stderr
    counts = all_topic_counts(topics)
    assert counts["touches"] + counts["dead-letter"] == 1, counts  # the row before it was handled
