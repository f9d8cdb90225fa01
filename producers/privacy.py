"""Privacy rules applied to every captured input before anything is produced.

The collector, the webhooks, the imports and the Python API all pass their text
through here: emails are redacted from URLs, referrers, titles and free-text
properties; an email given on purpose (identify, contact change) is kept only as the
SHA-256 of its normalised form; a contact id can be derived from that hash. No raw IP
address ever reaches an event (the collector simply never reads it).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = [
    "EMAIL_REDACTION",
    "contact_id_from_email",
    "email_sha256",
    "is_bot",
    "normalise_email",
    "redact_emails",
]

#: What an email found in free text is replaced with.
EMAIL_REDACTION = "REDACTED"

# Local part and domain as they appear in URLs: raw "@", or percent-encoded "%40"
# (any case), so that ?email=jane%40acme.com is caught as well as jane@acme.com.
_EMAIL_IN_TEXT = re.compile(
    r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
    re.IGNORECASE,
)
_EMAIL_STRICT = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Substrings of user agents of crawlers, monitors, link previewers and automation
# tools. Matching is case-insensitive; the list is deliberately conservative: a
# false "bot" flag hides a real visitor from reports.
_BOT_PATTERNS = (
    "bot", "crawl", "spider", "slurp", "mediapartners", "headlesschrome", "phantomjs",
    "lighthouse", "pingdom", "uptimerobot", "facebookexternalhit", "embedly", "curl/",
    "wget/", "python-requests", "python-httpx", "go-http-client", "java/", "okhttp",
    "scrapy", "httpclient", "monitor",
)
_BOT_RE = re.compile("|".join(re.escape(p) for p in _BOT_PATTERNS), re.IGNORECASE)


def redact_emails(text: str) -> str:
    """Replace every email-looking substring (raw or percent-encoded) by ``REDACTED``."""
    if "@" not in text and "%40" not in text.lower():
        return text  # fast path: the pixel calls this on every hit
    return _EMAIL_IN_TEXT.sub(EMAIL_REDACTION, text)


def normalise_email(email: str) -> str:
    """Trimmed, lower-cased email; raises ValueError when it is not an email."""
    value = email.strip().lower()
    if not _EMAIL_STRICT.match(value) or len(value) > 320:
        raise ValueError("not an email address")
    return value


def email_sha256(email: str) -> str:
    """Hex SHA-256 of the normalised email (the only form in which an email is stored)."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def contact_id_from_email(email: str) -> str:
    """The contact id derived from an email: ``email:`` + the first 32 hex chars of its SHA-256.

    Deterministic, so the same person identified by two forms (or by a form and a CRM
    export that carries only the email) becomes the same contact.
    """
    return "email:" + email_sha256(email)[:32]


@lru_cache(maxsize=4096)
def is_bot(user_agent: str | None) -> bool:
    """True when the user agent matches a known crawler/automation pattern.

    Cached: a site sees few distinct user agents, and a 50-event beacon repeats one.
    """
    return bool(user_agent) and _BOT_RE.search(user_agent or "") is not None
