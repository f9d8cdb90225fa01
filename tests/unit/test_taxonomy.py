"""Channel taxonomy: the default rules, replacing them, invalid files, the classify command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ground.settings import Settings, get_settings
from leadstream.commands.classify import register
from streams import taxonomy as taxonomy_module
from streams.taxonomy import (
    Classification,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
    normalise_value,
    referrer_host,
    taxonomy_from_settings,
)

SITE = "acme.com"
PAGE = "https://www.acme.com/pricing"

DEFAULT_CHANNELS = (
    "Paid Search", "Organic Search", "Paid Social", "Organic Social", "Email", "Referral", "Display",
    "Affiliate", "Video", "Events", "Webinar", "Content", "Partner", "Outbound", "Direct mail", "Phone",
    "Direct", "Unknown",
)


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    """The shipped default rules, with acme.com as the site's own domain."""
    return load_taxonomy(site_domains=[SITE])


def utm(source: str | None, medium: str | None = None, campaign: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"touch_type": "page_view", "url": PAGE, "utm_source": source, "utm_medium": medium,
            "utm_campaign": campaign, **extra}


def ref(referrer: str, **extra: Any) -> dict[str, Any]:
    return {"touch_type": "page_view", "url": PAGE, "referrer": referrer, **extra}


def offline(touch_type: str, **extra: Any) -> dict[str, Any]:
    return {"touch_type": touch_type, "url": None, "referrer": None, "properties": {}, **extra}


# (id, touch, (channel, source, detail, rule))
CASES: list[tuple[str, dict[str, Any], tuple[str, str, str, str]]] = [
    # --- UTM tags: messy casing, spacing, separators
    ("utm-google-cpc-messy", utm(" Google ", "CPC", "Spring_Sale  2026"),
     ("Paid Search", "google", "spring sale 2026", "utm.medium.paid_search")),
    ("utm-google-ppc-upper", utm("GOOGLE", "ppc"), ("Paid Search", "google", "", "utm.medium.paid_search")),
    ("utm-google-paid-search-words", utm("google", "Paid Search"),
     ("Paid Search", "google", "", "utm.medium.paid_search")),
    ("utm-google-ads-alias", utm("Google_Ads", "cpc"), ("Paid Search", "google", "", "utm.medium.paid_search")),
    ("utm-bing-cpc", utm("bing", "cpc"), ("Paid Search", "bing", "", "utm.medium.paid_search")),
    ("utm-facebook-paid-social-underscore", utm("FaceBook", "Paid_Social"),
     ("Paid Social", "facebook", "", "utm.medium.paid_social")),
    ("utm-linkedin-paid-social-dash", utm("linkedin", "paid-social", "Q4-ABM"),
     ("Paid Social", "linkedin", "q4-abm", "utm.medium.paid_social")),
    ("utm-linkedin-camelcase-medium", utm("LinkedIn ", " PaidSocial"),
     ("Paid Social", "linkedin", "", "utm.medium.paid_social")),
    ("utm-facebook-cpc-is-paid-social", utm("facebook", "cpc"),
     ("Paid Social", "facebook", "", "utm.medium.paid_search.social")),
    ("utm-youtube-cpc-is-video", utm("youtube", "cpc"), ("Video", "youtube", "", "utm.medium.paid_search.video")),
    ("utm-source-domain-social", utm("Facebook.com", "social"),
     ("Organic Social", "facebook", "", "utm.medium.organic_social")),
    ("utm-twitter-social-media", utm("twitter", "Social Media"),
     ("Organic Social", "twitter", "", "utm.medium.organic_social")),
    ("utm-x-is-twitter", utm("X", "social"), ("Organic Social", "twitter", "", "utm.medium.organic_social")),
    ("utm-youtube-social", utm("youtube", "social"), ("Organic Social", "youtube", "", "utm.medium.organic_social")),
    ("utm-newsletter-e-mail", utm("Newsletter", "E-Mail", "Nov  Digest"),
     ("Email", "newsletter", "nov digest", "utm.medium.email")),
    ("utm-mailchimp-email", utm("mailchimp", "EMAIL"), ("Email", "mailchimp", "", "utm.medium.email")),
    ("utm-hubspot-email", utm("hs_email", "email"), ("Email", "hubspot email", "", "utm.medium.email")),
    ("utm-referral-underscored-source", utm("partner_site", "referral"),
     ("Referral", "partner site", "", "utm.medium.referral")),
    ("utm-referral-domain-source", utm("www.Partner-Site.io", "Referral"),
     ("Referral", "partner-site.io", "", "utm.medium.referral")),
    ("utm-cpc-unknown-source", utm("capterra", "cpc"), ("Paid Search", "capterra", "", "utm.medium.paid_search")),
    ("utm-display", utm("google", "display"), ("Display", "google", "", "utm.medium.display")),
    ("utm-retargeting", utm("criteo", "retargeting"), ("Display", "criteo", "", "utm.medium.display")),
    ("utm-affiliate", utm("partnerstack", "affiliate"), ("Affiliate", "partnerstack", "", "utm.medium.affiliate")),
    ("utm-partner", utm("Acme  Partner", "Partner"), ("Partner", "acme partner", "", "utm.medium.partner")),
    ("utm-content", utm("medium", "blog"), ("Content", "medium", "", "utm.medium.content")),
    ("utm-events-trade-show", utm("saastr", "Trade_Show"), ("Events", "saastr", "", "utm.medium.events")),
    ("utm-webinar", utm("zoom", "webinar"), ("Webinar", "zoom", "", "utm.medium.webinar")),
    ("utm-outbound", utm("apollo", "outbound"), ("Outbound", "apollo", "", "utm.medium.outbound")),
    ("utm-direct-mail", utm("postcard", "direct mail"), ("Direct mail", "postcard", "", "utm.medium.direct_mail")),
    ("utm-phone", utm("callrail", "phone"), ("Phone", "callrail", "", "utm.medium.phone")),
    ("utm-organic", utm("google", "organic"), ("Organic Search", "google", "", "utm.medium.organic_search")),
    ("utm-in-url-only", {"touch_type": "page_view", "url": "https://acme.com/?UTM_SOURCE=Bing&utm_medium=CPC&x=1"},
     ("Paid Search", "bing", "", "utm.medium.paid_search")),
    # --- missing medium
    ("no-medium-google", utm("google"), ("Organic Search", "google", "", "utm.source.search")),
    ("no-medium-facebook", utm("Facebook"), ("Organic Social", "facebook", "", "utm.source.social")),
    ("no-medium-newsletter", utm("newsletter", None, "weekly"), ("Email", "newsletter", "weekly", "utm.source.email")),
    ("no-medium-chatgpt", utm("chatgpt.com"), ("Referral", "chatgpt", "ai assistant", "utm.source.ai")),
    ("no-medium-unknown-source", utm("partnerx"), ("Unknown", "partnerx", "", "utm.unknown_source")),
    ("medium-none-placeholder", utm("google", "(none)"), ("Organic Search", "google", "", "utm.source.search")),
    ("medium-not-set-with-gclid", utm("google", "(not set)", gclid="Cj0KCQ"),
     ("Paid Search", "google", "", "click_id.gclid")),
    ("medium-without-source-gclid", utm(None, "cpc", gclid="Cj0KCQ"),
     ("Paid Search", "google", "", "utm.medium.paid_search")),
    ("medium-without-source-bare", utm(None, "cpc"), ("Paid Search", "(not set)", "", "utm.medium.paid_search")),
    ("medium-without-source-referrer", utm(None, "social", referrer="https://l.facebook.com/l.php?u=x"),
     ("Organic Social", "facebook", "", "utm.medium.organic_social")),
    # --- unknown values stay Unknown
    ("unknown-medium-foo", utm("foo", "foo"), ("Unknown", "foo", "", "utm.unknown_medium")),
    ("unknown-medium-known-source", utm("Google", "Banana_Split"), ("Unknown", "google", "", "utm.unknown_medium")),
    # --- click ids without UTM
    ("gclid", ref("", gclid="Cj0KCQ"), ("Paid Search", "google", "", "click_id.gclid")),
    ("msclkid", {"touch_type": "page_view", "msclkid": "abc"}, ("Paid Search", "bing", "", "click_id.msclkid")),
    ("fbclid", {"touch_type": "page_view", "fbclid": "IwAR"}, ("Paid Social", "facebook", "", "click_id.fbclid")),
    ("li_fat_id", {"touch_type": "page_view", "li_fat_id": "x1"},
     ("Paid Social", "linkedin", "", "click_id.li_fat_id")),
    ("ttclid", {"touch_type": "page_view", "ttclid": "E.C"}, ("Paid Social", "tiktok", "", "click_id.ttclid")),
    ("gclid-in-url", {"touch_type": "page_view", "url": "https://acme.com/demo?gclid=Cj0"},
     ("Paid Search", "google", "", "click_id.gclid")),
    ("wbraid-in-url", {"touch_type": "page_view", "url": "https://acme.com/?wbraid=x"},
     ("Paid Search", "google", "", "click_id.wbraid")),
    ("twclid-in-properties", {"touch_type": "page_view", "properties": {"twclid": "t1"}},
     ("Paid Social", "twitter", "", "click_id.twclid")),
    ("gclid-beats-referrer", ref("https://www.google.com/", gclid="Cj0"),
     ("Paid Search", "google", "", "click_id.gclid")),
    ("blank-click-id-ignored", ref("https://www.google.com/", gclid="  "),
     ("Organic Search", "google", "", "referrer.search")),
    # --- search engines
    ("ref-google", ref("https://www.google.com/"), ("Organic Search", "google", "", "referrer.search")),
    ("ref-google-co-uk", ref("https://www.google.co.uk/"), ("Organic Search", "google", "", "referrer.search")),
    ("ref-google-de", ref("https://google.de/search?q=acme"), ("Organic Search", "google", "", "referrer.search")),
    ("ref-google-app", ref("android-app://com.google.android.googlequicksearchbox/"),
     ("Organic Search", "google", "", "referrer.search")),
    ("ref-bing", ref("https://www.bing.com/search?q=x"), ("Organic Search", "bing", "", "referrer.search")),
    ("ref-duckduckgo", ref("https://duckduckgo.com/"), ("Organic Search", "duckduckgo", "", "referrer.search")),
    ("ref-yahoo", ref("https://search.yahoo.com/search?p=x"), ("Organic Search", "yahoo", "", "referrer.search")),
    ("ref-yahoo-jp", ref("https://search.yahoo.co.jp/"), ("Organic Search", "yahoo", "", "referrer.search")),
    ("ref-baidu", ref("https://www.baidu.com/link?url=x"), ("Organic Search", "baidu", "", "referrer.search")),
    ("ref-yandex", ref("https://yandex.ru/"), ("Organic Search", "yandex", "", "referrer.search")),
    ("ref-ya-ru", ref("https://ya.ru/"), ("Organic Search", "yandex", "", "referrer.search")),
    ("ref-ecosia", ref("https://www.ecosia.org/search?q=x"), ("Organic Search", "ecosia", "", "referrer.search")),
    # --- AI assistants (Referral, marked in the detail)
    ("ref-chatgpt", ref("https://chatgpt.com/"), ("Referral", "chatgpt", "ai assistant", "referrer.ai")),
    ("ref-chat-openai", ref("https://chat.openai.com/c/1"), ("Referral", "chatgpt", "ai assistant", "referrer.ai")),
    ("ref-perplexity", ref("https://www.perplexity.ai/search/x"),
     ("Referral", "perplexity", "ai assistant", "referrer.ai")),
    ("ref-gemini-not-google-search", ref("https://gemini.google.com/app"),
     ("Referral", "gemini", "ai assistant", "referrer.ai")),
    ("ref-copilot", ref("https://copilot.microsoft.com/"), ("Referral", "copilot", "ai assistant", "referrer.ai")),
    ("ref-claude", ref("https://claude.ai/chat/1"), ("Referral", "claude", "ai assistant", "referrer.ai")),
    # --- social networks
    ("ref-facebook", ref("https://www.facebook.com/"), ("Organic Social", "facebook", "", "referrer.social")),
    ("ref-l-facebook", ref("https://l.facebook.com/l.php?u=x"),
     ("Organic Social", "facebook", "", "referrer.social")),
    ("ref-m-facebook", ref("https://m.facebook.com/"), ("Organic Social", "facebook", "", "referrer.social")),
    ("ref-instagram", ref("https://l.instagram.com/"), ("Organic Social", "instagram", "", "referrer.social")),
    ("ref-linkedin", ref("https://www.linkedin.com/feed/"), ("Organic Social", "linkedin", "", "referrer.social")),
    ("ref-lnkd-in", ref("https://lnkd.in/abc"), ("Organic Social", "linkedin", "", "referrer.social")),
    ("ref-t-co", ref("https://t.co/xyz"), ("Organic Social", "twitter", "", "referrer.social")),
    ("ref-x-com", ref("https://x.com/acme/status/1"), ("Organic Social", "twitter", "", "referrer.social")),
    ("ref-twitter", ref("https://twitter.com/"), ("Organic Social", "twitter", "", "referrer.social")),
    ("ref-reddit", ref("https://old.reddit.com/r/x"), ("Organic Social", "reddit", "", "referrer.social")),
    ("ref-hacker-news", ref("https://news.ycombinator.com/item?id=1"),
     ("Organic Social", "hacker news", "", "referrer.social")),
    ("ref-youtube-is-video", ref("https://www.youtube.com/watch?v=1"), ("Video", "youtube", "", "referrer.video")),
    ("ref-youtu-be", ref("https://youtu.be/1"), ("Video", "youtube", "", "referrer.video")),
    # --- webmail and email tools
    ("ref-gmail", ref("https://mail.google.com/mail/u/0/"), ("Email", "gmail", "", "referrer.email")),
    ("ref-gmail-app", ref("android-app://com.google.android.gm/"), ("Email", "gmail", "", "referrer.email")),
    ("ref-outlook-live", ref("https://outlook.live.com/"), ("Email", "outlook", "", "referrer.email")),
    ("ref-outlook-office", ref("https://outlook.office.com/mail/"), ("Email", "outlook", "", "referrer.email")),
    ("ref-yahoo-mail-not-search", ref("https://mail.yahoo.com/d/folders/1"),
     ("Email", "yahoo mail", "", "referrer.email")),
    ("ref-mailchimp", ref("https://acme.us5.list-manage.com/track/click?u=1"),
     ("Email", "mailchimp", "", "referrer.email")),
    ("ref-hubspot-links", ref("https://d2v8tf04.na1.hubspotlinks.com/Ctc/x"),
     ("Email", "hubspot email", "", "referrer.email")),
    ("ref-webmail-prefix", ref("https://webmail.provider.de/"), ("Email", "webmail", "", "referrer.email")),
    # --- other referrers
    ("ref-google-docs-is-referral", ref("https://docs.google.com/document/d/1"),
     ("Referral", "google workspace", "", "referrer.referral")),
    ("ref-other", ref("https://blog.example.org/post"), ("Referral", "blog.example.org", "", "referrer.other")),
    ("ref-other-port-case", ref("https://WWW.Example.ORG:443/path"),
     ("Referral", "example.org", "", "referrer.other")),
    ("ref-scheme-less", ref("partner.io/page"), ("Referral", "partner.io", "", "referrer.other")),
    ("ref-lookalike-of-site", ref("https://acme.com.evil.io/"),
     ("Referral", "acme.com.evil.io", "", "referrer.other")),
    ("ref-suffix-of-site-name", ref("https://notacme.com/"), ("Referral", "notacme.com", "", "referrer.other")),
    ("ref-with-campaign-only", ref("https://news.example.net/", utm_campaign="Launch"),
     ("Referral", "news.example.net", "launch", "referrer.other")),
    # --- the site's own domain: internal, so Direct
    ("internal-apex", ref("https://acme.com/blog"), ("Direct", "(direct)", "", "referrer.internal")),
    ("internal-www", ref("https://www.acme.com/"), ("Direct", "(direct)", "", "referrer.internal")),
    ("internal-subdomain", ref("https://app.acme.com/login"), ("Direct", "(direct)", "", "referrer.internal")),
    ("internal-same-host-unconfigured", {"touch_type": "page_view", "url": "https://shop.example.net/a",
                                         "referrer": "https://shop.example.net/b"},
     ("Direct", "(direct)", "", "referrer.internal")),
    # --- offline touch types decide first
    ("event-scan", offline("event_scan", properties={"event": "SaaStr  2026"}),
     ("Events", "event", "saastr 2026", "touch_type.event_scan")),
    ("event-scan-beats-utm-and-gclid", offline("event_scan", utm_source="LinkedIn", utm_medium="cpc", gclid="x",
                                               referrer="https://www.google.com/"),
     ("Events", "linkedin", "", "touch_type.event_scan")),
    ("webinar", offline("webinar_attended", properties={"platform": "Zoom", "webinar": "Q3 Pipeline"}),
     ("Webinar", "zoom", "q3 pipeline", "touch_type.webinar_attended")),
    ("outbound-call", offline("outbound_call"), ("Outbound", "call", "", "touch_type.outbound_call")),
    ("outbound-email", offline("outbound_email", properties={"campaign": "Cold_Q4"}),
     ("Outbound", "email", "cold q4", "touch_type.outbound_email")),
    ("direct-mail", offline("direct_mail_response"),
     ("Direct mail", "direct mail", "", "touch_type.direct_mail_response")),
    ("inbound-call", offline("inbound_call", properties={"source": "CallRail"}),
     ("Phone", "callrail", "", "touch_type.inbound_call")),
    # --- touch types that only fill in for "no signal"
    ("email-click-bare", offline("email_click"), ("Email", "email", "", "touch_type.email_click")),
    ("email-click-tagged", utm("mailchimp", "email", touch_type="email_click"),
     ("Email", "mailchimp", "", "utm.medium.email")),
    ("chat-uses-web-context", ref("https://www.google.com/", touch_type="chat"),
     ("Organic Search", "google", "", "referrer.search")),
    ("chat-bare", offline("chat"), ("Direct", "(direct)", "", "direct")),
    # --- direct
    ("direct", {"touch_type": "page_view", "url": PAGE}, ("Direct", "(direct)", "", "direct")),
    ("direct-empty-touch", {}, ("Direct", "(direct)", "", "direct")),
    ("direct-empty-referrer", ref(""), ("Direct", "(direct)", "", "direct")),
    ("direct-about-blank", ref("about:blank"), ("Direct", "(direct)", "", "direct")),
    ("direct-blank-utm", utm("   ", " "), ("Direct", "(direct)", "", "direct")),
    ("direct-tagged", utm("(direct)", "(none)"), ("Direct", "(direct)", "", "utm.source.direct")),
    ("direct-campaign-only", utm(None, None, "Brand_Push"), ("Direct", "(direct)", "brand push", "direct")),
]


def test_enough_cases() -> None:
    """The representative table keeps at least 60 inputs and unique ids."""
    ids = [c[0] for c in CASES]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("touch", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(tax: Taxonomy, touch: dict[str, Any], expected: tuple[str, str, str, str]) -> None:
    """Each representative touch lands on the documented channel › source › detail and rule,
    carries the rules version, and keeps its raw utm_source/utm_medium as given."""
    result = tax.classify(touch)
    assert (result.channel, result.source, result.detail, result.rule) == expected
    assert result.version == tax.version == "2026.11.1"
    assert result.channel in tax.channels
    source, medium = touch.get("utm_source"), touch.get("utm_medium")
    if (source or "").strip() or (medium or "").strip():
        assert (result.raw_source, result.raw_medium) == (source, medium)
    elif "utm_source" in touch:
        assert (result.raw_source, result.raw_medium) == (None, None)  # blank counts as absent


def test_classify_is_stable_across_calls(tax: Taxonomy) -> None:
    """Memoised lookups change nothing: a second pass over every case gives equal results."""
    first = [tax.classify(c[1]) for c in CASES]
    assert [tax.classify(c[1]) for c in CASES] == first


def test_raw_values_from_url_are_kept(tax: Taxonomy) -> None:
    """Tags read from the URL are the raw values reported, undecoded case and all."""
    result = tax.classify({"url": "https://acme.com/?utm_source=Foo%20Bar&utm_medium=Wat_Ever"})
    assert result.channel == "Unknown"
    assert (result.raw_source, result.raw_medium) == ("Foo Bar", "Wat_Ever")
    assert result.source == "foo bar"


def test_touch_fields_win_over_url(tax: Taxonomy) -> None:
    """Tags already lifted onto the touch are used as they are; the URL is not re-read."""
    touch = utm("bing", "cpc", url="https://acme.com/?utm_source=facebook&utm_medium=social")
    assert (tax.classify(touch).channel, tax.classify(touch).source) == ("Paid Search", "bing")


def test_unknown_touch_type_is_a_web_touch(tax: Taxonomy) -> None:
    """A touch type the rules do not list is classified from its web context."""
    assert tax.classify(ref("https://duckduckgo.com/", touch_type="form_submit")).channel == "Organic Search"


def test_default_channels_and_version(tax: Taxonomy) -> None:
    """The shipped rules carry a version and the conventional default channel groups, in order."""
    assert tax.channels == DEFAULT_CHANNELS
    assert tax.version == "2026.11.1"


def test_site_domains_are_needed_for_internal() -> None:
    """A referrer from another domain of the site is a Referral until that domain is listed as the site's."""
    touch = ref("https://docs.acme-help.io/post")
    assert load_taxonomy().classify(touch).channel == "Referral"
    assert load_taxonomy(site_domains=["ACME-help.io "]).classify(touch).rule == "referrer.internal"


def test_classification_as_dict() -> None:
    """as_dict has exactly the contract's fields, for JSON and Avro output."""
    c = Classification("Direct", "(direct)", "", "direct", "v", None, None)
    assert list(c.as_dict()) == ["channel", "source", "detail", "rule", "version", "raw_source", "raw_medium"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" Paid_Social ", "paid social"), ("Spring  Sale\t2026", "spring sale 2026"), ("Q4-2026", "q4-2026"),
     ("a__b", "a b"), ("", "")],
)
def test_normalise_value(value: str, expected: str) -> None:
    """Normalisation trims, lower-cases and collapses spaces/underscores but keeps dashes."""
    assert normalise_value(value) == expected


@pytest.mark.parametrize(
    ("referrer", "host"),
    [("https://user:pw@WWW.Example.com:8443/x?y#z", "example.com"), ("//cdn.example.com/a", "cdn.example.com"),
     ("android-app://com.linkedin.android/", "com.linkedin.android"), ("https://[::1]:8080/", "[::1]"),
     ("about:blank", None), ("", None), ("example.com.", "example.com")],
)
def test_referrer_host(referrer: str, host: str | None) -> None:
    """Host extraction drops userinfo, port, trailing dot and www., and rejects non-URLs."""
    assert referrer_host(referrer) == host


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream of unique referrers and sources does not grow the memo caches without limit."""
    monkeypatch.setattr(taxonomy_module, "_CACHE_MAX", 50)
    fresh = load_taxonomy()
    for i in range(500):
        fresh.classify({"referrer": f"https://site{i}.example/", "utm_campaign": "x"})
        fresh.classify({"utm_source": f"source {i}", "utm_medium": "email"})
    assert len(fresh._host_cache) <= 50
    assert len(fresh._source_cache) <= 50
    assert fresh.classify({"referrer": "https://site1.example/"}).source == "site1.example"


_TEXT = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["cpc", "google", "Email", "(none)", " "]))


_TOUCHES = st.fixed_dictionaries({
    "touch_type": st.sampled_from(["page_view", "ad_click", "event_scan", "email_click", "chat", "other", "bogus"]),
    "utm_source": _TEXT, "utm_medium": _TEXT, "utm_campaign": _TEXT, "url": _TEXT, "referrer": _TEXT, "gclid": _TEXT,
})


@settings(max_examples=300, deadline=None)
@given(touch=_TOUCHES)
def test_classify_never_fails(touch: dict[str, Any]) -> None:
    """Whatever strings arrive, classify returns a listed channel and keeps the raw UTM values."""
    tax = _default_for_property()
    result = tax.classify(touch)
    assert result.channel in tax.channels
    assert result.source
    source = touch["utm_source"]
    if source is not None and source.strip():
        assert result.raw_source == source


_PROPERTY_TAXONOMY: list[Taxonomy] = []


def _default_for_property() -> Taxonomy:
    if not _PROPERTY_TAXONOMY:
        _PROPERTY_TAXONOMY.append(load_taxonomy(site_domains=[SITE]))
    return _PROPERTY_TAXONOMY[0]


# --------------------------------------------------------------------------------------
# A user's file replaces the default

CUSTOM = """
version: "acme-7"
channels: [Paid Search, AI Assistants, Referral, Direct, Unknown]
site_domains: [acme.io]
touch_types:
  event_scan: {channel: Referral, source: booth}
categories:
  ai: {channel: AI Assistants}
sources:
  chatgpt: {category: ai, hosts: [chatgpt.com], aliases: [gpt]}
mediums:
  paid:
    channel: Paid Search
    values: [cpc]
missing_medium: [none]
click_ids:
  gclid: {channel: Paid Search, source: google}
"""


@pytest.fixture
def custom_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(CUSTOM)
    return path


def test_custom_file_replaces_default(custom_file: Path) -> None:
    """A user's file is the whole taxonomy: its version, channels and rules; nothing of the default remains."""
    tax = load_taxonomy(custom_file)
    assert tax.version == "acme-7"
    assert tax.channels == ("Paid Search", "AI Assistants", "Referral", "Direct", "Unknown")
    assert tax.classify(ref("https://chatgpt.com/")).channel == "AI Assistants"
    # google is not catalogued in the custom file: just another referrer.
    google = tax.classify(ref("https://www.google.com/"))
    assert (google.channel, google.source, google.rule) == ("Referral", "google.com", "referrer.other")
    assert tax.classify(utm("GPT")).channel == "AI Assistants"
    assert tax.classify(utm("x", "social")).channel == "Unknown"
    assert tax.classify(offline("event_scan")).source == "booth"
    assert tax.classify(offline("webinar_attended")).channel == "Direct"
    assert tax.classify(ref("https://app.acme.io/")).rule == "referrer.internal"
    assert tax.classify(utm("google", "cpc")).version == "acme-7"


def test_custom_file_from_settings(custom_file: Path) -> None:
    """LEADSTREAM_TAXONOMY and LEADSTREAM_SITE_DOMAINS select the rules and the internal domains."""
    s = Settings(LEADSTREAM_TAXONOMY=str(custom_file), LEADSTREAM_SITE_DOMAINS="example.com, acme.net")
    tax = taxonomy_from_settings(s)
    assert tax.version == "acme-7"
    assert tax.classify(ref("https://www.acme.net/")).rule == "referrer.internal"
    assert tax.classify(ref("https://acme.io/")).rule == "referrer.internal"


def test_default_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without LEADSTREAM_TAXONOMY the shipped rules are used."""
    monkeypatch.delenv("LEADSTREAM_TAXONOMY", raising=False)
    assert taxonomy_from_settings(Settings()).version == "2026.11.1"


# --------------------------------------------------------------------------------------
# Invalid files: a clear error naming the problem

BROKEN = [
    ("yaml-syntax", "version: '1'\nchannels: [Direct, Unknown\n", "not valid YAML at line"),
    ("not-a-mapping", "- just\n- a list\n", "expected a mapping"),
    ("missing-version", "channels: [Direct, Unknown]\n", "version: Field required"),
    ("float-version", "version: 2026.10\nchannels: [Direct, Unknown]\n", 'quoted string, e.g. version: "2026.1"'),
    ("unknown-key", "version: '1'\nchannels: [Direct, Unknown]\nmedium: {}\n", "medium: Extra inputs"),
    ("unknown-channel", "version: '1'\nchannels: [Direct, Unknown]\nmediums:\n  paid: {channel: Paid Serch, "
     "values: [cpc]}\n", "mediums.paid: channel 'Paid Serch' is not in channels"),
    ("missing-unknown", "version: '1'\nchannels: [Direct]\n", "channels: must include 'Unknown'"),
    ("duplicate-channel", "version: '1'\nchannels: [Direct, Unknown, Direct]\n", "'Direct' is listed twice"),
    ("medium-in-two-groups", "version: '1'\nchannels: [Email, Direct, Unknown]\nmediums:\n"
     "  a: {channel: Email, values: [e-mail]}\n  b: {channel: Email, values: [EMAIL]}\n",
     "mediums.b.values: 'EMAIL' is already in mediums.a"),
    ("bad-touch-type", "version: '1'\nchannels: [Events, Direct, Unknown]\ntouch_types:\n"
     "  booth_scan: {channel: Events, source: event}\n", "touch_types.booth_scan: not a touch type"),
    ("source-unknown-category", "version: '1'\nchannels: [Direct, Unknown]\nsources:\n  google: {category: search}\n",
     "sources.google.category: 'search' is not in categories"),
    ("duplicate-alias", "version: '1'\nchannels: [Email, Direct, Unknown]\ncategories:\n  email: {channel: Email}\n"
     "sources:\n  a: {category: email, aliases: [news]}\n  b: {category: email, aliases: [News]}\n",
     "sources.b.aliases: 'News' already means source 'a'"),
    ("host-with-path", "version: '1'\nchannels: [Email, Direct, Unknown]\ncategories:\n  email: {channel: Email}\n"
     "sources:\n  a: {category: email, hosts: ['https://mail.example.com/x']}\n", "is not a host name"),
    ("wrong-type", "version: '1'\nchannels: [Direct, Unknown]\nmediums:\n  a: {channel: Direct, values: cpc}\n",
     "mediums.a.values: Input should be a valid list"),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_invalid_file(tmp_path: Path, text: str, message: str) -> None:
    """An invalid rules file raises TaxonomyError naming the file and the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a TaxonomyError, not a bare OSError."""
    with pytest.raises(TaxonomyError, match="cannot be read"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    """All problems of a file are reported at once, not one per attempt."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: '1'\nchannels: [Direct]\nclick_ids:\n  gclid: {channel: Paid, source: google}\n")
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert "must include 'Unknown'" in message
    assert "click_ids.gclid: channel 'Paid' is not in channels" in message


# --------------------------------------------------------------------------------------
# leadstream classify


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    """A root app with only the classify command registered, reading a clean environment."""
    monkeypatch.delenv("LEADSTREAM_TAXONOMY", raising=False)
    monkeypatch.setenv("LEADSTREAM_SITE_DOMAINS", "acme.com")
    get_settings.cache_clear()  # settings are read once per process: re-read this environment
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """Keeps classify a sub-command, as under the real root."""

    yield app
    get_settings.cache_clear()


def test_cli_prints_json(cli: typer.Typer) -> None:
    """classify prints channel, source, detail, rule, version and the raw values as JSON."""
    url = "https://acme.com/?utm_source=LinkedIn&utm_medium=Paid-Social&utm_campaign=Q4_ABM"
    result = CliRunner().invoke(cli, ["classify", url, "--referrer", "https://lnkd.in/x"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "channel": "Paid Social", "source": "linkedin", "detail": "q4 abm", "rule": "utm.medium.paid_social",
        "version": "2026.11.1", "raw_source": "LinkedIn", "raw_medium": "Paid-Social",
    }


def test_cli_type_and_referrer(cli: typer.Typer) -> None:
    """--type selects offline rules; --referrer on the site's own domain (from the environment) is internal."""
    out = CliRunner().invoke(cli, ["classify", "https://acme.com/", "--type", "webinar_attended"])
    assert json.loads(out.stdout)["channel"] == "Webinar"
    out = CliRunner().invoke(cli, ["classify", "https://acme.com/", "-r", "https://app.acme.com/"])
    assert json.loads(out.stdout)["rule"] == "referrer.internal"
    out = CliRunner().invoke(cli, ["classify", "https://x.io/", "-r", "https://y.x.io/", "--site-domain", "X.io"])
    assert json.loads(out.stdout)["rule"] == "referrer.internal"


def test_cli_custom_taxonomy(cli: typer.Typer, custom_file: Path) -> None:
    """--taxonomy classifies with the given file and reports its version."""
    out = CliRunner().invoke(cli, ["classify", "https://acme.io/", "-r", "https://chatgpt.com/",
                                   "--taxonomy", str(custom_file)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["channel"], data["version"]) == ("AI Assistants", "acme-7")


def test_cli_errors(cli: typer.Typer, tmp_path: Path) -> None:
    """A bad --type or an invalid rules file exits non-zero with the reason, not a traceback."""
    out = CliRunner().invoke(cli, ["classify", "https://acme.com/", "--type", "booth"])
    assert out.exit_code == 2 and "not one of" in out.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nchannels: [Direct]\n")
    out = CliRunner().invoke(cli, ["classify", "https://acme.com/", "--taxonomy", str(bad)])
    assert out.exit_code == 2
    assert "must include 'Unknown'" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
