"""The pure parts of erasure: the id graph, the request log, the keyed hashes, the SQL settings clause."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from producers.erasure_requests import IdGraph
from schemas.codec import decode, encode
from schemas.erasures import ErasureKeys, ErasureLog, NoErasureSecretError, erasure_record
from sinks.clickhouse import with_settings


def _graph() -> IdGraph:
    graph = IdGraph()
    graph.fold("Identify", {"contact_id": "c1", "anonymous_id": "a1", "email_sha256": "h1"})
    graph.fold("Identify", {"contact_id": "c2", "anonymous_id": "a2"})
    graph.fold("Identify", {"contact_id": "c3", "anonymous_id": "a3"})
    graph.fold("ContactChange", {"contact_id": "c2", "change": "merge", "merged_into": "c1"})
    graph.fold("ContactChange", {"contact_id": "c3", "change": "merge", "merged_into": "c2"})  # a chain
    graph.fold("ContactChange", {"contact_id": "c1", "change": "merge", "merged_into": "c9"})  # c1 into another
    graph.fold("Identify", {"contact_id": None, "anonymous_id": "a-none"})  # no contact: nothing to link
    return graph


def test_a_subject_takes_what_was_merged_into_it_transitively_and_their_visitors() -> None:
    subject = _graph().subject("c1", ["c1"])
    assert subject.contact_ids == {"c1", "c2", "c3"}  # not c9: the contact c1 was merged into is someone else
    assert subject.anonymous_ids == {"a1", "a2", "a3"}
    assert _graph().by_email == {"h1": {"c1"}}


def test_a_subject_that_absorbed_nothing_is_itself_and_a_cycle_ends() -> None:
    graph = _graph()
    graph.fold("ContactChange", {"contact_id": "c9", "change": "merge", "merged_into": "c3"})  # a cycle
    assert graph.subject("c9", ["c9"]).contact_ids == {"c9", "c1", "c2", "c3"}
    lone = IdGraph().subject("x", ["x", ""])
    assert lone.contact_ids == {"x"} and lone.anonymous_ids == set()


def test_the_log_folds_requests_and_steps_and_says_what_is_pending() -> None:
    log = ErasureLog()
    assert log.add(erasure_record("e1", "requested", keys={"k2", "k1"}, contacts=1)) is True
    assert log.add(erasure_record("e1", "requested", keys={"k2", "k1"}, contacts=1)) is False  # compaction replay
    assert log.add(erasure_record("e2", "requested", keys={"k3"})) is True
    assert log.add(erasure_record("e1", "worker")) is False
    assert log.keys() == {"k1", "k2", "k3"}
    assert log.pending("worker") == ["e2"] and log.pending("sink") == ["e1", "e2"]
    assert log.requests["e1"]["keys"] == ["k1", "k2"]  # sorted: the record is the same whoever writes it


def test_an_erasure_record_is_a_valid_avro_record_without_personal_data() -> None:
    keys = ErasureKeys("s3cret")
    record = erasure_record("e1", "requested", keys={keys.key("ann@example.com")}, contacts=1, anonymous_ids=2)
    name, back = decode(encode("Erasure", record))
    assert name == "Erasure" and back["keys"] == record["keys"] and "ann" not in str(back)


def test_keys_and_placeholders_are_keyed_hashes_that_need_the_secret() -> None:
    keys = ErasureKeys("s3cret")
    expected = hmac.new(b"s3cret", b"erasure\x00c1", hashlib.sha256).hexdigest()[:32]
    assert keys.key("c1") == expected and keys.key("c1") != ErasureKeys("other").key("c1")
    assert keys.key("c1") != hashlib.sha256(b"c1").hexdigest()[:32]  # a plain hash could be reversed from a list
    placeholder = keys.placeholder("c1")
    assert placeholder.startswith("erased:") and len(placeholder) == len("erased:") + 16
    assert placeholder == keys.placeholder("c1") != keys.placeholder("c2")
    for missing in (None, ""):
        with pytest.raises(NoErasureSecretError, match="LEADSTREAM_ID_SECRET"):
            ErasureKeys(missing)


def test_the_settings_clause_quotes_values_and_refuses_names_that_are_not_names() -> None:
    sql = with_settings("SELECT 1", {"readonly": 1, "format_csv_delimiter": "'", "flag": True}, "CSV")
    assert sql == "SELECT 1\n SETTINGS readonly = 1, format_csv_delimiter = '\\'', flag = 1\n FORMAT CSV"
    assert with_settings("SELECT 1", None, "JSON") == "SELECT 1\n FORMAT JSON"
    for settings, fmt in (({"a = 1, readonly": 0}, "CSV"), ({}, "CSV; DROP"), ({}, "")):
        with pytest.raises(Exception, match="not a"):
            with_settings("SELECT 1", settings, fmt)
