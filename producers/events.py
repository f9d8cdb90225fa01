"""Validation of captured input and its conversion into Avro records.

Every way into leadstream (pixel, JSON beacon, identify, webhooks, CSV imports, the
Python API) hands a mapping of field names to this module and gets back a record that
fits the schemas in ``schemas/avro`` — or a :class:`Rejected` error carrying a short
reason code and a human-readable detail, which the caller turns into a 4xx answer and
a dead-letter record. Nothing here enriches: classification belongs to the worker.

The field names are the ones docs/capture.md documents for the JSON bodies and the CSV
headers (``event_id``, ``event_time``, ``anonymous_id``, ``contact_id``, ``type``, ...).
The module passes 400 lines because the four record builders share its field
validators; split apart, each would import the private helpers of the other.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ground.errors import CaptureError
from ground.vocabulary import CLICK_IDS, UTM_FIELDS, now_ms
from producers.privacy import NoIdSecretError, Pseudonyms, is_bot, redact_emails
from schemas.vocabulary import TOUCH_TYPES

__all__ = [
    "CONTACT_CHANGES",
    "DEAL_CHANGES",
    "LIFECYCLE_STAGES",
    "PIXEL_PARAMS",
    "Rejected",
    "contact_change_record",
    "deal_change_record",
    "fx_rate_record",
    "identify_record",
    "parse_event_time",
    "pixel_fields",
    "spend_record",
    "touch_record",
]

DEAL_CHANGES = ("created", "stage_changed", "amount_changed", "won", "lost", "reopened")
CONTACT_CHANGES = ("created", "updated", "merge")
LIFECYCLE_STAGES = ("subscriber", "lead", "mql", "sql", "opportunity", "customer")
#: Pixel query parameter -> field name of the JSON bodies.
PIXEL_PARAMS = {
    "u": "url", "r": "referrer", "aid": "anonymous_id", "t": "type", "eid": "event_id",
    "ti": "title", "cid": "contact_id", "ct": "created_at", "st": "sent_at",
}

MAX_URL = 4096
MAX_TEXT = 1024
MAX_ID = 256
MAX_MAP_ENTRIES = 64
# Event times outside [2000-01-01, now + 1 day] are typos or unit errors (seconds
# instead of milliseconds), not touches; accepting them would move a lead source.
MIN_EVENT_TIME_MS = 946_684_800_000
MAX_FUTURE_MS = 86_400_000
# A browser that queued an event longer than this is not telling the truth about it.
MAX_DEVICE_DELAY_MS = 30 * 86_400_000
# Fixed namespace for the deterministic ids of server-side inputs without an event_id:
# re-sending a webhook or re-importing a file yields the same ids, which the sinks
# de-duplicate on.
EVENT_ID_NAMESPACE = uuid.UUID("5b0f3a0e-6c1d-4d8e-9f57-1e2d3c4b5a69")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")

Record = dict[str, Any]


class Rejected(CaptureError):
    """An input that does not fit: ``code`` is a short reason, ``detail`` says why."""

    def __init__(self, code: str, detail: str, raw: bytes | None = None) -> None:
        super().__init__(f"{code}: {detail}", raw)
        self.code = code
        self.detail = detail



# ---- scalar fields -------------------------------------------------------------------
def _present(value: Any) -> bool:
    return value is not None and value != ""


def _text(fields: Mapping[str, Any], name: str, limit: int = MAX_TEXT, *, required: bool = False) -> str | None:
    """A string field: ints are accepted (CRMs use numeric ids), other types are not."""
    value = fields.get(name)
    if not _present(value):
        if required:
            raise Rejected("missing_field", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected("invalid_field", f"{name} must be a string")
    text = str(value).strip() if isinstance(value, int) else value.strip()
    if not text:
        if required:
            raise Rejected("missing_field", f"{name} is required")
        return None
    if len(text) > limit:
        raise Rejected("field_too_long", f"{name} is longer than {limit} characters")
    _check_unicode(name, text)
    return text


def _check_unicode(name: str, text: str) -> None:
    # JSON may carry lone surrogates ("\ud800") that cannot be written as UTF-8; ASCII
    # (most of what a tracker sees) always can, and isascii() is nearly free.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Rejected("invalid_string", f"{name} is not valid unicode") from exc
    if "\x00" in text:
        raise Rejected("invalid_string", f"{name} contains a NUL character")


def _enum(fields: Mapping[str, Any], name: str, symbols: tuple[str, ...], *,
          default: str | None = None, required: bool = False) -> str | None:
    value = _text(fields, name, 64, required=required and default is None)
    if value is None:
        return default
    value = value.lower()
    if value not in symbols:
        raise Rejected(f"invalid_{name}", f"{name} {value[:64]!r} is not one of {', '.join(symbols)}")
    return value


def _int(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if not _present(value):
        return None
    if isinstance(value, bool):
        raise Rejected("invalid_field", f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        return int(value)
    raise Rejected("invalid_field", f"{name} must be an integer")


def _event_id(fields: Mapping[str, Any], *, deterministic: str | None) -> str:
    """The given event_id (must be a uuid), else a random or content-derived one."""
    value = fields.get("event_id")
    if _present(value):
        if not isinstance(value, str):
            raise Rejected("invalid_event_id", "event_id must be a uuid string")
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError as exc:
            raise Rejected("invalid_event_id", f"event_id {value[:64]!r} is not a uuid") from exc
    if deterministic is None:
        return str(uuid.uuid4())
    canonical = json.dumps({k: v for k, v in fields.items() if _present(v)}, sort_keys=True, default=str)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{deterministic}:{canonical}"))


def parse_event_time(value: Any, *, name: str = "event_time", now: int | None = None) -> int:
    """Epoch milliseconds from an int/float (epoch ms), a numeric string or ISO-8601.

    ISO-8601 without an offset is read as UTC. Values before 2000 or more than a
    day in the future are rejected (usually seconds passed as milliseconds).
    """
    now = now_ms() if now is None else now
    millis: int
    if isinstance(value, bool) or value is None:
        raise Rejected("invalid_event_time", f"{name} must be ISO-8601 or epoch milliseconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise Rejected("invalid_event_time", f"{name} is not finite")
        millis = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d{1,16}(\.\d+)?", text):
            millis = int(float(text))
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError as exc:
                raise Rejected("invalid_event_time",
                               f"{name} {text[:64]!r} is neither ISO-8601 nor epoch milliseconds") from exc
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            millis = int(parsed.timestamp() * 1000)
    else:
        raise Rejected("invalid_event_time", f"{name} must be ISO-8601 or epoch milliseconds")
    if millis < MIN_EVENT_TIME_MS or millis > now + MAX_FUTURE_MS:
        raise Rejected("invalid_event_time", f"{name} {millis} ms is before 2000 or more than a day ahead")
    return millis


def _event_time(fields: Mapping[str, Any], received_at: int, *, required: bool) -> int:
    """event_time if given; else receive time corrected by the device's own queueing delay.

    A browser's clock can be wrong by hours, but the difference between two readings
    of the same clock (sent - created) is still a good measure of how long the event
    waited on the device, so ``received_at - (sent - created)`` is a trustworthy event
    time that a wrong clock cannot move.
    """
    if _present(fields.get("event_time")):
        return parse_event_time(fields["event_time"], now=received_at)
    if required:
        raise Rejected("missing_field", "event_time is required")
    created, sent = _int(fields, "created_at"), _int(fields, "sent_at")
    if created is None or sent is None:
        return received_at
    delay = sent - created
    if delay < 0 or delay > MAX_DEVICE_DELAY_MS:
        raise Rejected("invalid_device_times", f"sent_at - created_at = {delay} ms is not a plausible delay")
    return received_at - delay


def _string_map(fields: Mapping[str, Any], name: str) -> dict[str, str]:
    """A flat map of strings; scalars are stringified, emails in values redacted."""
    value = fields.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise Rejected("invalid_field", f"{name} must be an object of strings")
    if len(value) > MAX_MAP_ENTRIES:
        raise Rejected("field_too_long", f"{name} has more than {MAX_MAP_ENTRIES} entries")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 128:
            raise Rejected("invalid_field", f"{name} keys must be short non-empty strings")
        _check_unicode(f"{name} key", key)
        if item is None:
            continue
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, (str, int, float)):
            text = str(item)
        else:
            raise Rejected("invalid_field", f"{name}.{key[:64]} must be a string, number or boolean")
        if len(text) > MAX_TEXT:
            raise Rejected("field_too_long", f"{name}.{key[:64]} is longer than {MAX_TEXT} characters")
        _check_unicode(f"{name}.{key[:64]}", text)
        out[key] = redact_emails(text)
    return out


def _url(fields: Mapping[str, Any], name: str, *, absolute: bool) -> str | None:
    value = _text(fields, name, MAX_URL)
    if value is None:
        return None
    if absolute:
        try:
            parts = urlsplit(value)
        except ValueError as exc:  # e.g. an invalid IPv6 literal
            raise Rejected("invalid_url", f"{name} is not a URL") from exc
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise Rejected("invalid_url", f"{name} must be an absolute http(s) URL")
    return redact_emails(value)


def _email(fields: Mapping[str, Any], ids: Pseudonyms) -> str | None:
    value = _text(fields, "email", 320)
    if value is None:
        return None
    try:
        return ids.email_hash(value)
    except NoIdSecretError as exc:
        raise Rejected("id_secret_missing", str(exc)) from exc
    except ValueError as exc:
        raise Rejected("invalid_email", "email is not an email address") from exc


def _unknown_columns(fields: Mapping[str, Any], known: set[str]) -> dict[str, str]:
    """The non-empty text columns of a CSV row that are no field of its record (emails redacted)."""
    return {key: redact_emails(value)[:MAX_TEXT] for key, value in fields.items()
            if key not in known and _present(value) and isinstance(value, str)}


def _envelope(fields: Mapping[str, Any], received_at: int, *, deterministic: str | None,
              require_event_time: bool) -> Record:
    """The fields every record starts with: event id, event time and receive time."""
    return {
        "event_id": _event_id(fields, deterministic=deterministic),
        "event_time": _event_time(fields, received_at, required=require_event_time),
        "received_at": received_at,
    }


def _contact_id(contact_id: str | None, email_hash: str | None) -> str:
    """The given contact_id, else the one derived from the email's keyed hash."""
    if contact_id is not None:
        return contact_id
    if email_hash is None:
        raise Rejected("missing_field", "contact_id or email is required")
    return "email:" + email_hash[:32]


# ---- records ---------------------------------------------------------------------------
def pixel_fields(params: Mapping[str, str]) -> dict[str, Any]:
    """Map the pixel's short query parameters to the JSON field names.

    UTM parameters and click ids that appear at the top level of the query string
    belong to the page URL: they are there when ``u`` was not percent-encoded
    (``/p.gif?u=https://x/?utm_source=a&utm_medium=b``), so they are put back on it.
    """
    fields: dict[str, Any] = {}
    extras: list[tuple[str, str]] = []
    for key, value in params.items():
        if key in PIXEL_PARAMS:
            fields[PIXEL_PARAMS[key]] = value
        elif key in UTM_FIELDS or key in CLICK_IDS:
            extras.append((key, value))
    url = fields.get("url")
    if extras and isinstance(url, str) and url:
        fields["url"] = url + ("&" if "?" in url else "?") + urlencode(extras)
    elif extras:
        fields.update(dict(extras))
    return fields


def touch_record(
    fields: Mapping[str, Any],
    *,
    received_at: int,
    user_agent: str | None = None,
    require_event_time: bool = False,
    deterministic_id: bool = False,
    extra_properties: bool = False,
) -> Record:
    """A Touch from JSON/CSV/API fields.

    Page views need an absolute http(s) ``url``; offline touches (calls, scans,
    webinars) may come without one but need ``anonymous_id`` or ``contact_id``.
    With ``extra_properties`` (CSV imports), unknown non-empty columns become
    ``properties``.
    """
    touch_type = _enum(fields, "type", TOUCH_TYPES, default=None) or _enum(
        fields, "touch_type", TOUCH_TYPES, default="page_view")
    anonymous_id = _text(fields, "anonymous_id", MAX_ID)
    contact_id = _text(fields, "contact_id", MAX_ID)
    if anonymous_id is None and contact_id is None:
        raise Rejected("missing_field", "anonymous_id or contact_id is required")
    url = _url(fields, "url", absolute=True)
    if url is None and touch_type == "page_view":
        raise Rejected("missing_field", "url is required for a page_view")
    referrer = _url(fields, "referrer", absolute=False)
    title = _text(fields, "title", MAX_TEXT) or _text(fields, "page_title", MAX_TEXT)
    ua = user_agent if user_agent is not None else _text(fields, "user_agent", MAX_TEXT)
    if ua is not None:
        ua = ua[:MAX_TEXT]
    record: Record = {
        **_envelope(fields, received_at, deterministic="touch" if deterministic_id else None,
                    require_event_time=require_event_time),
        "anonymous_id": anonymous_id,
        "contact_id": contact_id,
        "touch_type": touch_type,
        "url": url,
        "referrer": referrer,
        "user_agent": ua,
        "page_title": redact_emails(title) if title else None,
        "is_bot": is_bot(ua),
        "properties": _string_map(fields, "properties"),
    }
    # Attribution parameters: an explicit field wins, else the page URL's query.
    query: dict[str, str] = {}
    if url and "?" in url:
        # The query is what lies between "?" and "#": cheaper than a third urlsplit.
        for key, value in parse_qsl(url.partition("?")[2].partition("#")[0], keep_blank_values=False):
            query.setdefault(key.lower(), value)
    for name in (*UTM_FIELDS, *CLICK_IDS):
        explicit = _text(fields, name, MAX_TEXT) if name in fields else None
        found = explicit if explicit is not None else query.get(name)
        record[name] = redact_emails(found)[:MAX_TEXT] if found else None
    if extra_properties:
        record["properties"].update(_unknown_columns(fields, {*TOUCH_FIELDS, *UTM_FIELDS, *CLICK_IDS}))
    return record


TOUCH_FIELDS = ("event_id", "event_time", "created_at", "sent_at", "anonymous_id", "contact_id", "type",
                "touch_type", "url", "referrer", "title", "page_title", "user_agent", "properties")


def identify_record(
    fields: Mapping[str, Any],
    *,
    received_at: int,
    ids: Pseudonyms,
    require_event_time: bool = False,
    deterministic_id: bool = False,
    extra_traits: bool = False,
) -> Record:
    """An Identify: anonymous id -> contact id (given, or derived from the email hash)."""
    anonymous_id = _text(fields, "anonymous_id", MAX_ID, required=True)
    given = _text(fields, "contact_id", MAX_ID)
    email_hash = _email(fields, ids)
    contact_id = _contact_id(given, email_hash)
    traits = _string_map(fields, "traits")
    if extra_traits:
        known = {"event_id", "event_time", "anonymous_id", "contact_id", "email", "source", "source_system",
                 "traits"}
        traits.update(_unknown_columns(fields, known))
    return {
        **_envelope(fields, received_at, deterministic="identify" if deterministic_id else None,
                    require_event_time=require_event_time),
        "anonymous_id": anonymous_id,
        "contact_id": contact_id,
        "email_sha256": email_hash,
        "traits": traits,
        "source_system": _text(fields, "source", MAX_TEXT) or _text(fields, "source_system", MAX_TEXT),
    }


def contact_change_record(
    fields: Mapping[str, Any],
    *,
    received_at: int,
    ids: Pseudonyms,
    require_event_time: bool = True,
    extra_properties: bool = False,
) -> Record:
    """A ContactChange (created, updated, merge) from a webhook, import or the API."""
    change = _enum(fields, "change", CONTACT_CHANGES, required=True)
    email_hash = _email(fields, ids)
    contact_id = _contact_id(_text(fields, "contact_id", MAX_ID), email_hash)
    merged_into = _text(fields, "merged_into", MAX_ID)
    if change == "merge" and merged_into is None:
        raise Rejected("missing_field", "merged_into is required for a merge")
    if merged_into is not None and merged_into == contact_id:
        raise Rejected("invalid_merge", "a contact cannot be merged into itself")
    properties = _string_map(fields, "properties")
    if extra_properties:
        known = {"event_id", "event_time", "contact_id", "change", "contact_source", "owner",
                 "lifecycle_stage", "merged_into", "email", "source_system", "properties"}
        properties.update(_unknown_columns(fields, known))
    return {
        **_envelope(fields, received_at, deterministic="contact", require_event_time=require_event_time),
        "contact_id": contact_id,
        "change": change,
        "contact_source": _text(fields, "contact_source", MAX_TEXT),
        "owner": _text(fields, "owner", MAX_TEXT),
        "lifecycle_stage": _enum(fields, "lifecycle_stage", LIFECYCLE_STAGES),
        "merged_into": merged_into,
        "email_sha256": email_hash,
        "source_system": _text(fields, "source_system", MAX_TEXT),
        "properties": properties,
    }


def _amount(fields: Mapping[str, Any]) -> float | None:
    value = fields.get("amount")
    if not _present(value):
        return None
    if isinstance(value, bool):
        raise Rejected("invalid_amount", "amount must be a number")
    try:
        amount = float(value.replace(",", "") if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise Rejected("invalid_amount", f"amount {str(value)[:64]!r} is not a number") from exc
    if not math.isfinite(amount) or amount < 0:
        raise Rejected("invalid_amount", "amount must be a finite number >= 0")
    return amount


def _id_list(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if not _present(value):
        return []
    items: list[Any]
    if isinstance(value, str):
        items = [v for v in (p.strip() for p in value.split(";")) if v]
    elif isinstance(value, list):
        items = value
    else:
        raise Rejected("invalid_field", f"{name} must be a list (';'-separated in CSV)")
    out: list[str] = []
    for i, item in enumerate(items):
        one = _text({"id": item}, "id", MAX_ID)
        if one is None:
            raise Rejected("invalid_field", f"{name}[{i}] is empty")
        if one not in out:
            out.append(one)
    return out


def _currency(fields: Mapping[str, Any]) -> str:
    currency = _text(fields, "currency", 8) or "USD"
    if not _CURRENCY.match(currency):
        raise Rejected("invalid_currency", f"currency {currency!r} is not a 3-letter code")
    return currency.upper()


def _day_start(fields: Mapping[str, Any], received_at: int) -> int:
    """The UTC midnight of the row's ``date`` (ISO date or anything parse_event_time reads)."""
    value = fields.get("date")
    if not _present(value):
        raise Rejected("missing_field", "date is required")
    try:
        at = parse_event_time(value, name="date", now=received_at)
    except Rejected as exc:
        raise Rejected("invalid_date", exc.detail) from exc
    return at - at % 86_400_000


def spend_record(fields: Mapping[str, Any], *, received_at: int) -> Record:
    """A Spend row (one day, one channel › source › campaign) from an import or the API."""
    amount = _amount(fields)
    if amount is None:
        raise Rejected("missing_field", "amount is required")
    day = _day_start(fields, received_at)
    record = {
        "channel": _text(fields, "channel", MAX_TEXT, required=True),
        "source": _text(fields, "source", MAX_TEXT) or "",
        "campaign": _text(fields, "campaign", MAX_TEXT) or "",
        "amount": amount,
        "currency": _currency(fields),
        "source_system": _text(fields, "source_system", MAX_TEXT),
    }
    # the row's content names it: a re-import of the same row is the same event
    identity = {"date": day, **{k: record[k] for k in ("channel", "source", "campaign", "currency")}}
    return {"event_id": _event_id({**identity, "event_id": fields.get("event_id")}, deterministic="spend"),
            "event_time": day, "received_at": received_at, **record}


def fx_rate_record(fields: Mapping[str, Any], *, received_at: int) -> Record:
    """An FxRate row: one unit of ``currency`` is worth ``rate`` units of the reporting currency from ``date``."""
    value = fields.get("rate")
    if not _present(value) or isinstance(value, bool):
        raise Rejected("missing_field", "rate is required")
    try:
        rate = float(value.replace(",", "") if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise Rejected("invalid_rate", f"rate {str(value)[:64]!r} is not a number") from exc
    if not math.isfinite(rate) or rate <= 0:
        raise Rejected("invalid_rate", "rate must be a finite number > 0")
    day = _day_start(fields, received_at)
    currency = _currency({"currency": fields.get("currency") or ""}) if _present(fields.get("currency")) else None
    if currency is None:
        raise Rejected("missing_field", "currency is required")
    identity = {"date": day, "currency": currency, "rate": rate, "event_id": fields.get("event_id")}
    return {"event_id": _event_id(identity, deterministic="fx_rate"),
            "event_time": day, "received_at": received_at, "currency": currency, "rate": rate}


def deal_change_record(
    fields: Mapping[str, Any],
    *,
    received_at: int,
    require_event_time: bool = True,
) -> Record:
    """A DealChange from a webhook, import or the API."""
    contact_ids = _id_list(fields, "contact_ids")
    primary = _text(fields, "primary_contact_id", MAX_ID)
    if primary is None:
        if not contact_ids:
            raise Rejected("missing_field", "primary_contact_id (or contact_ids) is required")
        primary = contact_ids[0]
    if primary not in contact_ids:
        contact_ids.insert(0, primary)
    currency = _currency(fields)
    version = _int(fields, "version")
    if version is not None and version < 0:
        raise Rejected("invalid_field", "version must be >= 0")
    return {
        **_envelope(fields, received_at, deterministic="deal", require_event_time=require_event_time),
        "deal_id": _text(fields, "deal_id", MAX_ID, required=True),
        "change": _enum(fields, "change", DEAL_CHANGES, required=True),
        "stage": _text(fields, "stage", MAX_TEXT),
        "amount": _amount(fields),
        "currency": currency,
        "owner": _text(fields, "owner", MAX_TEXT),
        "primary_contact_id": primary,
        "contact_ids": contact_ids,
        "pipeline": _text(fields, "pipeline", MAX_TEXT),
        "close_reason": _text(fields, "close_reason", MAX_TEXT),
        "source_system": _text(fields, "source_system", MAX_TEXT),
        "version": version or 0,
    }
