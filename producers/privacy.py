"""Privacy rules applied to every captured input before anything is produced.

The collector, the webhooks, the imports and the Python API all pass their text
through here: emails are redacted from URLs, referrers, titles and free-text
properties; an email given on purpose (identify, contact change) is kept only as a
keyed hash of its normalised form (:class:`Pseudonyms`), from which a contact id can be
derived. No raw IP
address ever reaches an event (the collector simply never reads it).

Every pattern here runs on client text, so each one is compiled with RE2 (google-re2),
whose matching time is linear in the input whatever the pattern: Python's backtracking
engine took 13 s to scan a 50 KB run of address characters ending in ``@`` with the
email pattern below, and froze the collector meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

import re2

__all__ = [
    "EMAIL_REDACTION",
    "NoIdSecretError",
    "Pseudonyms",
    "is_bot",
    "normalise_email",
    "redact_emails",
]

#: What an email found in free text is replaced with.
EMAIL_REDACTION = "REDACTED"

# Local part and domain as they appear in URLs: raw "@", or percent-encoded "%40"
# (any case), so that ?email=jane%40acme.com is caught as well as jane@acme.com.
# Compiled over bytes in Latin-1 mode, which reads every byte as one character: the
# pattern is ASCII-only, so it matches exactly what it matches in UTF-8, and invalid
# UTF-8 costs nothing extra (in UTF-8 mode RE2 took 140 ms over a megabyte of it).
_latin1 = re2.Options()
_latin1.encoding = re2.Options.Encoding.LATIN1
_EMAIL_IN_BYTES = re2.compile(
    rb"(?i)[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", _latin1
)
_EMAIL_STRICT = re2.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: RFC 5321's limit on an address; checked before any pattern runs.
MAX_EMAIL = 320

# Substrings of user agents of crawlers, monitors, link previewers and automation
# tools. Matching is case-insensitive; the list is deliberately conservative: a
# false "bot" flag hides a real visitor from reports.
_BOT_PATTERNS = (
    "bot", "crawl", "spider", "slurp", "mediapartners", "headlesschrome", "phantomjs",
    "lighthouse", "pingdom", "uptimerobot", "facebookexternalhit", "embedly", "curl/",
    "wget/", "python-requests", "python-httpx", "go-http-client", "java/", "okhttp",
    "scrapy", "httpclient", "monitor",
)
_BOT_RE = re2.compile("(?i)" + "|".join(re.escape(p) for p in _BOT_PATTERNS))


def redact_emails(text: str) -> str:
    """Replace every email-looking substring (raw or percent-encoded) by ``REDACTED``."""
    if "@" not in text and "%40" not in text.lower():
        return text  # fast path: the pixel calls this on every hit
    # Over bytes: RE2 reads UTF-8, and text may hold surrogates (a raw body's invalid
    # bytes, a JSON escape) that no strict encoding accepts; "surrogatepass" round-trips them.
    raw = text.encode("utf-8", "surrogatepass")
    return _EMAIL_IN_BYTES.sub(EMAIL_REDACTION.encode(), raw).decode("utf-8", "surrogatepass")


def normalise_email(email: str) -> str:
    """Trimmed, lower-cased email; raises ValueError when it is not an email."""
    value = email.strip().lower()
    try:
        valid = len(value) <= MAX_EMAIL and _EMAIL_STRICT.match(value) is not None
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape is no address
        valid = False
    if not valid:
        raise ValueError("not an email address")
    return value


class NoIdSecretError(ValueError):
    """An email arrived and no ``LEADSTREAM_ID_SECRET`` is configured to hash it with."""


class Pseudonyms:
    """Emails -> keyed, non-reversible hashes and the contact ids derived from them.

    A plain SHA-256 of an address can be reversed by anyone who hashes a list of
    addresses and compares; an HMAC-SHA256 under the deployment's secret cannot, without
    the secret. Deterministic under one secret, so the same person identified by two
    forms (or by a form and a CRM export that carries only the email) becomes the same
    contact. Without a secret every email is refused rather than hashed weakly.
    """

    def __init__(self, secret: str | None) -> None:
        self._key = secret.encode() if secret else None

    @classmethod
    def of(cls, secret: object) -> Pseudonyms:
        """From the settings' ``id_secret`` (a SecretStr, a plain string or None)."""
        value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
        return cls(str(value) if value else None)

    @property
    def configured(self) -> bool:
        return self._key is not None

    def email_hash(self, email: str) -> str:
        """Hex HMAC-SHA256 of the normalised email (the only form in which an email is stored).

        Raises ValueError when it is no email, NoIdSecretError when there is no secret.
        """
        value = normalise_email(email)
        if self._key is None:
            raise NoIdSecretError("LEADSTREAM_ID_SECRET is not set: events with an email are refused")
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def contact_id(self, email: str) -> str:
        """``email:`` + the first 32 hex characters of :meth:`email_hash`."""
        return "email:" + self.email_hash(email)[:32]


#: Characters of a user agent that are looked at: real ones are a few hundred long, and
#: the cache below must not hold a client's megabyte-long inventions.
MAX_USER_AGENT = 1024


def is_bot(user_agent: str | None) -> bool:
    """True when the user agent matches a known crawler/automation pattern."""
    return bool(user_agent) and _is_bot(user_agent[:MAX_USER_AGENT])  # type: ignore[index]


@lru_cache(maxsize=4096)
def _is_bot(user_agent: str) -> bool:
    # Cached: a site sees few distinct user agents, and a 50-event beacon repeats one.
    return _BOT_RE.search(user_agent) is not None
