"""Validation rules of captured input (pure: nothing running)."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.collector import sign
from producers.events import (
    Rejected,
    contact_change_record,
    deal_change_record,
    identify_record,
    parse_event_time,
    pixel_fields,
    touch_record,
)
from producers.privacy import Pseudonyms, is_bot, redact_emails
from schemas import decode, encode

IDS = Pseudonyms("unit-secret")

NOW = 1_750_000_000_000


def test_pixel_fields_reattach_unencoded_utm_parameters() -> None:
    """u=https://x/?utm_source=a&utm_medium=b (unencoded) keeps utm_medium on the page URL."""
    fields = pixel_fields({"u": "https://example.com/?utm_source=google", "utm_medium": "cpc", "aid": "a1",
                           "_": "cache-buster"})
    assert fields == {"url": "https://example.com/?utm_source=google&utm_medium=cpc", "anonymous_id": "a1"}


def test_touch_parses_utm_and_click_ids_and_redacts_emails() -> None:
    """UTMs and click ids come from the URL; emails in URL, referrer and title are redacted."""
    record = touch_record({"anonymous_id": "a", "url": "https://x.io/p?utm_source=li&UTM_CAMPAIGN=q4&li_fat_id=L1"
                                                       "&e=jo%40acme.com",
                           "referrer": "https://mail.example/?to=jo@acme.com", "title": "Hi jo@acme.com"},
                          received_at=NOW)
    assert record["utm_source"] == "li" and record["utm_campaign"] == "q4" and record["li_fat_id"] == "L1"
    assert "acme" not in record["url"] and "acme" not in record["referrer"] and "acme" not in record["page_title"]
    assert record["event_time"] == NOW and uuid.UUID(record["event_id"])
    assert decode(encode("Touch", record))[1] == record


def test_explicit_utm_field_wins_over_the_url() -> None:
    """An explicit utm_source (CSV column) overrides the URL's."""
    record = touch_record({"contact_id": "C", "type": "ad_click", "url": "https://x.io/?utm_source=a",
                           "utm_source": "b", "event_time": NOW}, received_at=NOW)
    assert record["utm_source"] == "b"


@pytest.mark.parametrize(("fields", "code"), [
    ({"url": "https://x.io/"}, "missing_field"),
    ({"anonymous_id": "a"}, "missing_field"),
    ({"anonymous_id": "a", "url": "/relative"}, "invalid_url"),
    ({"anonymous_id": "a", "url": "https://x.io/", "type": "telepathy"}, "invalid_type"),
    ({"anonymous_id": "a", "url": "https://x.io/", "event_id": "123"}, "invalid_event_id"),
    ({"anonymous_id": "a", "url": "https://x.io/", "event_time": 1_700_000_000}, "invalid_event_time"),
    ({"anonymous_id": "a", "url": "https://x.io/", "created_at": 10, "sent_at": 5}, "invalid_device_times"),
    ({"anonymous_id": "a" * 300, "url": "https://x.io/"}, "field_too_long"),
    ({"anonymous_id": "\ud800", "url": "https://x.io/"}, "invalid_string"),
    ({"anonymous_id": ["a"], "url": "https://x.io/"}, "invalid_field"),
    ({"anonymous_id": "a", "url": "https://x.io/", "properties": {"k": {"nested": 1}}}, "invalid_field"),
])
def test_invalid_touches_are_rejected_with_a_reason(fields: dict[str, object], code: str) -> None:
    """Each invalid touch raises Rejected with its reason code."""
    with pytest.raises(Rejected) as info:
        touch_record(fields, received_at=NOW)
    assert info.value.code == code


def test_device_delay_moves_event_time_not_the_device_clock() -> None:
    """event_time = received - (sent - created), whatever the device clock says."""
    record = touch_record({"anonymous_id": "a", "url": "https://x.io/", "created_at": 5, "sent_at": 2_005},
                          received_at=NOW)
    assert record["event_time"] == NOW - 2_000


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-01-01T00:00:00Z", 1_735_689_600_000),
    ("2025-01-01T01:00:00+01:00", 1_735_689_600_000),
    ("2025-01-01 00:00:00", 1_735_689_600_000),
    (1_735_689_600_000, 1_735_689_600_000),
    ("1735689600000", 1_735_689_600_000),
])
def test_event_time_formats(value: object, expected: int) -> None:
    """ISO-8601 (offset or UTC by default) and epoch milliseconds are accepted."""
    assert parse_event_time(value, now=NOW) == expected


@given(st.emails())
def test_email_hash_and_contact_id_are_normalised(email: str) -> None:
    """Case and surrounding spaces do not change the hash or the derived contact id."""
    messy = f"  {email.upper()} "
    normal = email.strip().lower().encode()
    assert IDS.email_hash(messy) == hmac.new(b"unit-secret", normal, hashlib.sha256).hexdigest()
    assert IDS.contact_id(messy) == "email:" + IDS.email_hash(email)[:32]


@given(st.emails())
def test_the_hash_is_keyed_so_a_list_of_addresses_does_not_reverse_it(email: str) -> None:
    """Neither the plain SHA-256 nor another secret's hash equals the stored one."""
    normal = email.strip().lower().encode()
    assert IDS.email_hash(email) != hashlib.sha256(normal).hexdigest()
    assert IDS.email_hash(email) != Pseudonyms("another-secret").email_hash(email)


def test_an_email_without_a_secret_is_refused() -> None:
    """No LEADSTREAM_ID_SECRET: an identify or contact change with an email is rejected, by name."""
    none = Pseudonyms(None)
    with pytest.raises(Rejected) as info:
        identify_record({"anonymous_id": "a", "email": "jo@acme.com"}, received_at=NOW, ids=none)
    assert info.value.code == "id_secret_missing" and "LEADSTREAM_ID_SECRET" in info.value.detail
    with pytest.raises(Rejected) as info:
        contact_change_record({"email": "jo@acme.com", "change": "created", "event_time": NOW}, received_at=NOW,
                              ids=none)
    assert info.value.code == "id_secret_missing"
    # without an email the secret is not needed
    assert identify_record({"anonymous_id": "a", "contact_id": "C-1"}, received_at=NOW, ids=none)["contact_id"] == "C-1"


def test_identify_needs_a_contact_and_never_keeps_the_email() -> None:
    """Identify keeps only the hash; without contact_id or email it is rejected."""
    record = identify_record({"anonymous_id": "a", "email": "Jo@Acme.com", "traits": {"company": "Acme", "n": 3}},
                             received_at=NOW, ids=IDS)
    assert record["contact_id"] == IDS.contact_id("jo@acme.com")
    assert "jo@acme.com" not in str(record).lower() and record["traits"] == {"company": "Acme", "n": "3"}
    with pytest.raises(Rejected, match="contact_id or email"):
        identify_record({"anonymous_id": "a"}, received_at=NOW, ids=IDS)
    with pytest.raises(Rejected) as info:
        identify_record({"anonymous_id": "a", "email": "not-an-email"}, received_at=NOW, ids=IDS)
    assert info.value.code == "invalid_email"


def test_deal_rules() -> None:
    """Deal changes: primary contact first in contact_ids, currency upper-cased, bad amounts refused."""
    record = deal_change_record({"deal_id": 77, "change": "Won", "event_time": NOW, "amount": "1,250.5",
                                 "currency": "gbp", "contact_ids": "C-2;C-1;C-2", "primary_contact_id": "C-1"},
                                received_at=NOW)
    assert record["deal_id"] == "77" and record["change"] == "won" and record["amount"] == 1250.5
    assert record["contact_ids"] == ["C-2", "C-1"] and record["currency"] == "GBP"
    assert decode(encode("DealChange", record))[1] == record
    for bad, code in [({"amount": "-1"}, "invalid_amount"), ({"amount": "NaN"}, "invalid_amount"),
                      ({"currency": "euro"}, "invalid_currency"), ({"change": "maybe"}, "invalid_change"),
                      ({"event_time": None}, "missing_field"), ({"primary_contact_id": None}, "missing_field")]:
        fields = {"deal_id": "D", "change": "won", "event_time": NOW, "primary_contact_id": "C", **bad}
        with pytest.raises(Rejected) as info:
            deal_change_record(fields, received_at=NOW)
        assert info.value.code == code, bad


def test_deal_event_id_is_deterministic_without_one() -> None:
    """The same deal change sent twice gets the same event id; a different one does not."""
    fields = {"deal_id": "D", "change": "won", "event_time": NOW, "primary_contact_id": "C"}
    first = deal_change_record(fields, received_at=NOW)["event_id"]
    assert deal_change_record(dict(fields), received_at=NOW + 5)["event_id"] == first
    assert deal_change_record({**fields, "amount": 5}, received_at=NOW)["event_id"] != first


def test_contact_merge_rules() -> None:
    """A merge needs merged_into and cannot point at itself; lifecycle stages are case-insensitive."""
    record = contact_change_record({"contact_id": "B", "change": "merge", "merged_into": "A", "event_time": NOW,
                                    "lifecycle_stage": "SQL"}, received_at=NOW, ids=IDS)
    assert record["merged_into"] == "A" and record["lifecycle_stage"] == "sql"
    with pytest.raises(Rejected, match="merged_into"):
        contact_change_record({"contact_id": "B", "change": "merge", "event_time": NOW}, received_at=NOW, ids=IDS)
    with pytest.raises(Rejected) as info:
        contact_change_record({"contact_id": "B", "change": "merge", "merged_into": "B", "event_time": NOW},
                              received_at=NOW, ids=IDS)
    assert info.value.code == "invalid_merge"


def test_redaction_and_bots() -> None:
    """Emails raw or percent-encoded are redacted; crawlers are bots, browsers are not."""
    assert redact_emails("a?e=jo.doe+x@mail.acme.co.uk&b=1") == "a?e=REDACTED&b=1"
    assert redact_emails("e=jo%40acme.com") == "e=REDACTED"
    assert redact_emails("no email here") == "no email here"
    assert is_bot("Mozilla/5.0 (compatible; bingbot/2.0)") and is_bot("curl/8.5.0")
    assert not is_bot("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36")
    assert not is_bot(None)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """sign() is exactly sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>."""
    expected = hmac.new(b"s3cret", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest()
    assert sign("s3cret", 1_700_000_000, b'{"a":1}') == f"sha256={expected}"
