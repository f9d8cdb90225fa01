"""Every pattern that reads client text finishes in linear time on the shapes that break
backtracking engines: a megabyte of address characters ending in ``@``, dotted hosts.
The hang guard (pytest-timeout) turns a regression into a failure. (Analysts' SQL is
parsed by the engine itself: ``tests/integration/test_sink_sql_guard.py``.)
"""

from __future__ import annotations

import pytest

from producers.privacy import EMAIL_REDACTION, is_bot, normalise_email, redact_emails

SIZE = 1_000_000

HOSTILE = [
    "a" * SIZE + "@",
    "a@" * (SIZE // 2),
    "a@" + "a." * (SIZE // 2),
    "x%40" * (SIZE // 4),
    "." * SIZE + "@a.bc",
    "-" * SIZE + "%40",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", HOSTILE, ids=[f"shape{i}" for i in range(len(HOSTILE))])
def test_redaction_is_linear(text: str) -> None:
    """Each megabyte-sized hostile text is redacted (or left alone) without backtracking."""
    out = redact_emails(text)
    assert len(out) <= len(text) + len(EMAIL_REDACTION)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", HOSTILE, ids=[f"shape{i}" for i in range(len(HOSTILE))])
def test_email_check_and_bot_check_are_bounded(text: str) -> None:
    """The strict address check and the bot check refuse or answer at once."""
    with pytest.raises(ValueError):
        normalise_email(text)
    assert is_bot(text) in (True, False)


@pytest.mark.parametrize("junk", ["\udcff\udcfe", "\ud800", "\udfff x"])
def test_text_with_undecodable_bytes_or_lone_surrogates(junk: str) -> None:
    """Surrogates (a raw body's invalid UTF-8, or a JSON escape) never make redaction fail."""
    assert redact_emails(f"jane@example.com {junk}") == f"{EMAIL_REDACTION} {junk}"
    with pytest.raises(ValueError):
        normalise_email(f"{junk}@example.com")


def test_redaction_still_redacts() -> None:
    """Raw and percent-encoded addresses are still replaced, in any case."""
    assert redact_emails("to Jane.Doe@Example.COM now") == f"to {EMAIL_REDACTION} now"
    assert redact_emails("?e=bob%40x.org&y=1") == f"?e={EMAIL_REDACTION}&y=1"
