"""The classifier's work is linear in its input, whatever a client put in a touch.

Every pattern the classifier runs on client text (UTM values, URLs, referrers) is
anchored or made of disjoint character classes; these strings are the shapes that make
a backtracking pattern quadratic. Each case must finish well inside the hang guard.
"""

from __future__ import annotations

import pytest

from streams.taxonomy import load_taxonomy, referrer_host

SIZE = 1_000_000

HOSTILE = [
    "a" * SIZE,
    "a." * (SIZE // 2),
    "-" * SIZE + "!",
    "http://" + "a" * SIZE,
    "//" + "a." * (SIZE // 2) + "/",
    " " * SIZE + "x",
    "_" * SIZE,
    "utm_source=" * (SIZE // 11),
    "a@" * (SIZE // 2),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE, ids=[f"shape{i}" for i in range(len(HOSTILE))])
def test_classify_hostile_text_in_every_field(text: str) -> None:
    """A 1 MB hostile value in each field gives an answer (Unknown/Referral/...) without a hang."""
    taxonomy = load_taxonomy()
    touch = {"touch_type": "page_view", "url": f"https://example.com/?{text}", "referrer": text,
             "utm_source": text, "utm_medium": text, "utm_campaign": text}
    assert taxonomy.classify(touch).channel in taxonomy.channels
    assert taxonomy.classify({"touch_type": "page_view", "referrer": text}).channel in taxonomy.channels
    referrer_host(text)  # must return (a host or None) rather than hang
