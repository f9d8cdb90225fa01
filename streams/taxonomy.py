"""Channel taxonomy: classify one touch to channel › source › detail.

Where it sits in the flow: the stream worker calls :meth:`Taxonomy.classify` on every
touch before it updates contact state, and stamps the result (with the taxonomy
``version``) on the enriched touch; ``leadstream classify`` runs the same code on one
hit so a user can see why it landed where it did.

The rules are data (``streams/taxonomy.yaml``, replaceable via ``LEADSTREAM_TAXONOMY``).
:func:`load_taxonomy` validates the file and compiles it into plain dict lookups and a
few precompiled patterns, so classifying costs a handful of dictionary look-ups; raw
strings seen again (UTM values, referrers) hit small bounded caches.

The module is longer than most because the precedence cascade, the compiled lookups it
reads and the validation of the file that feeds them are one unit: splitting them would
spread one rule over several files.

Precedence (documented in docs/taxonomy.md):

1. touch types with ``precedence: first`` (offline touches: events, webinars, ...);
2. UTM tags: a known ``utm_medium`` (paid mediums refined by the source's category),
   an unknown medium -> ``Unknown``; no medium -> a click id, else the source's
   category, else ``Unknown``;
3. click ids without UTM tags (gclid, msclkid, fbclid, li_fat_id, ttclid, ...);
4. the referrer: the site's own domains are internal; known hosts map through their
   category (search, social, video, email, AI assistant); any other host is a Referral;
5. touch types with ``precedence: fallback``; otherwise Direct.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ground.errors import LeadstreamError

if TYPE_CHECKING:
    from ground.settings import Settings

__all__ = [
    "DEFAULT_TAXONOMY_PATH",
    "Classification",
    "Taxonomy",
    "TaxonomyError",
    "load_taxonomy",
    "normalise_value",
    "referrer_host",
    "taxonomy_from_settings",
    "touch_type_names",
]

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")

DIRECT = "Direct"
UNKNOWN = "Unknown"
NOT_SET = "(not set)"
DIRECT_SOURCE = "(direct)"

# Bounded memo caches: UTM values and referrers repeat heavily, but a stream of
# unique strings must not grow memory without limit, so a full cache is simply reset.
_CACHE_MAX = 50_000
#: The longest host name DNS allows; nothing longer can be a catalogued host.
_MAX_HOST = 253

_SEPARATORS = re.compile(r"[\s_]+")
# Lookup key: lower-case, every separator and punctuation removed except dots (domains).
_COMPACT = re.compile(r"[^\w.]+|_+")
_DOMAIN = re.compile(r"^(?:[a-z][a-z0-9+.\-]*://)?(?:www\.)?([a-z0-9\-]+(?:\.[a-z0-9\-]+)+)/?$")
_HOST_WITH_SCHEME = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#\s]*)")
_HOST_BARE = re.compile(r"^\s*([^/?#\s:@]+\.[^/?#\s:@]+)")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_HOST_SPEC = re.compile(r"^[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.?$")
# Two-letter country domains whose registrations sit one level lower (google.co.uk).
_SECOND_LEVELS = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gob", "web"})


class TaxonomyError(LeadstreamError, ValueError):
    """A taxonomy file that cannot be read or does not make sense; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Classification:
    """Where one touch came from: channel › source › detail, and which rule said so."""

    channel: str  # e.g. "Paid Search"
    source: str  # e.g. "google" (normalised, lower-case)
    detail: str  # campaign or finer detail, "" when none
    rule: str  # name of the rule that matched
    version: str  # taxonomy version string from the YAML
    raw_source: str | None  # raw values kept for the quality report
    raw_medium: str | None

    def as_dict(self) -> dict[str, str | None]:
        """Plain dict, e.g. for JSON output or an Avro record."""
        return asdict(self)


def normalise_value(value: str) -> str:
    """Trim, lower-case and collapse runs of spaces/underscores into one space.

    Dashes and dots are kept: they carry meaning in campaign names ("q4-2026") and
    domains. Used for every source and detail written on a touch.
    """
    return _SEPARATORS.sub(" ", value.strip().lower()).strip()


def _compact(value: str) -> str:
    """Matching key: "Paid_Social", "paid-social" and " PaidSocial " are all "paidsocial"."""
    return _COMPACT.sub("", value.lower())


def _clean(value: Any) -> str | None:
    """A usable string or None: missing, non-string and blank values all count as absent."""
    if isinstance(value, str) and value and not value.isspace():
        return value
    return None


def referrer_host(referrer: str) -> str | None:
    """The host of a referrer URL, lower-case, without port, userinfo and leading ``www.``.

    Accepts app referrers (``android-app://com.google.android.gm``) and scheme-less
    hosts (``google.com/search``); returns None for ``about:blank`` and the like.
    """
    m = _HOST_WITH_SCHEME.match(referrer) or _HOST_BARE.match(referrer)
    if m is None:
        return None
    host = m.group(1).rpartition("@")[2]
    # An IPv6 literal keeps its colons; anything else loses its port.
    host = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
    host = host.lower().rstrip(".")
    host = host.removeprefix("www.")
    return host or None


# --------------------------------------------------------------------------------------
# The file format (validated with pydantic: unknown keys and wrong types are errors)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TouchTypeRule(_Model):
    channel: str
    source: str = Field(min_length=1)
    precedence: Literal["first", "fallback"] = "first"


class _Offline(_Model):
    source_properties: list[str] = []
    detail_properties: list[str] = []


class _Category(_Model):
    channel: str
    detail: str = ""


class _SourceSpec(_Model):
    category: str
    aliases: list[str] = []
    hosts: list[str] = []
    brands: list[str] = []
    host_prefixes: list[str] = []


class _MediumGroup(_Model):
    channel: str
    values: list[str] = Field(min_length=1)
    by_category: dict[str, str] = {}


class _ClickId(_Model):
    channel: str
    source: str = Field(min_length=1)


class _TaxonomyFile(_Model):
    version: str = Field(min_length=1)
    channels: list[str] = Field(min_length=1)
    site_domains: list[str] = []
    touch_types: dict[str, _TouchTypeRule] = {}
    offline: _Offline = _Offline()
    categories: dict[str, _Category] = {}
    sources: dict[str, _SourceSpec] = {}
    mediums: dict[str, _MediumGroup] = {}
    missing_medium: list[str] = []
    click_ids: dict[str, _ClickId] = {}


# --------------------------------------------------------------------------------------
# Compiled form


@dataclass(frozen=True, slots=True)
class _Known:
    """A catalogued source: its name, category, and the channel/detail of the category."""

    name: str
    category: str
    channel: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Medium:
    rule: str
    channel: str
    by_category: Mapping[str, tuple[str, str]]  # category -> (channel, rule)


@dataclass(frozen=True, slots=True)
class _ResolvedSource:
    """A raw ``utm_source`` after normalisation and catalogue lookup."""

    name: str
    known: _Known | None


@dataclass(frozen=True, slots=True)
class _TypeRule:
    rule: str
    channel: str
    source: str


class Taxonomy:
    """A compiled taxonomy. Build it with :func:`load_taxonomy`; ``classify`` is the hot path."""

    __slots__ = (
        "_aliases",
        "_brands",
        "_click_ids",
        "_detail_props",
        "_fallback_types",
        "_first_types",
        "_host_cache",
        "_hosts",
        "_mediums",
        "_missing_medium",
        "_prefixes",
        "_site_domains",
        "_site_suffixes",
        "_source_cache",
        "_source_props",
        "_tag_pattern",
        "channels",
        "path",
        "version",
    )

    def __init__(self, spec: _TaxonomyFile, *, path: Path, site_domains: Sequence[str] = ()) -> None:
        """Compile a validated file; use :func:`load_taxonomy` rather than calling this."""
        self.version: str = spec.version
        self.channels: tuple[str, ...] = tuple(spec.channels)
        self.path: Path = path

        categories = {name: (c.channel, c.detail) for name, c in spec.categories.items()}
        self._aliases: dict[str, _Known] = {}
        self._hosts: dict[str, _Known] = {}
        self._brands: dict[str, _Known] = {}
        prefixes: list[tuple[str, _Known]] = []
        for raw_name, src in spec.sources.items():
            channel, detail = categories[src.category]
            known = _Known(normalise_value(raw_name), src.category, channel, detail)
            for alias in (raw_name, *src.aliases):
                self._aliases[_compact(alias)] = known
            for host in src.hosts:
                self._hosts[_host_key(host)] = known
            for brand in src.brands:
                self._brands[brand.strip().lower()] = known
            prefixes.extend((p.strip().lower(), known) for p in src.host_prefixes)
        self._prefixes: tuple[tuple[str, _Known], ...] = tuple(prefixes)

        self._mediums: dict[str, _Medium] = {}
        for group_name, group in spec.mediums.items():
            rule = f"utm.medium.{group_name}"
            by_category = {cat: (ch, f"{rule}.{cat}") for cat, ch in group.by_category.items()}
            medium = _Medium(rule, group.channel, by_category)
            for value in group.values:
                self._mediums[_compact(value)] = medium
        self._missing_medium: frozenset[str] = frozenset(_compact(v) for v in spec.missing_medium)

        self._click_ids: tuple[tuple[str, str, str, str], ...] = tuple(
            (key, f"click_id.{key}", c.channel, normalise_value(c.source)) for key, c in spec.click_ids.items()
        )
        self._first_types: dict[str, _TypeRule] = {}
        self._fallback_types: dict[str, _TypeRule] = {}
        for ttype, t in spec.touch_types.items():
            target = self._first_types if t.precedence == "first" else self._fallback_types
            target[ttype] = _TypeRule(f"touch_type.{ttype}", t.channel, normalise_value(t.source))
        self._source_props: tuple[str, ...] = tuple(spec.offline.source_properties)
        self._detail_props: tuple[str, ...] = tuple(spec.offline.detail_properties)

        domains = {_host_key(d) for d in (*spec.site_domains, *site_domains) if d.strip()}
        self._site_domains: frozenset[str] = frozenset(domains)
        self._site_suffixes: tuple[str, ...] = tuple(sorted("." + d for d in domains))

        # A URL needs parsing only when it may carry tags the touch itself lacks.
        tag_keys = ["utm_source", "utm_medium", "utm_campaign", *(k for k, *_ in self._click_ids)]
        self._tag_pattern = re.compile(
            r"[?&#](?:" + "|".join(re.escape(k) for k in tag_keys) + r")=", re.IGNORECASE
        )
        self._source_cache: dict[str, _ResolvedSource] = {}
        self._host_cache: dict[str, tuple[str | None, _Known | None]] = {}

    def __repr__(self) -> str:
        return f"Taxonomy(version={self.version!r}, path={str(self.path)!r}, channels={len(self.channels)})"

    # -- lookups (memoised) -----------------------------------------------------------

    def _lookup_host(self, host: str) -> _Known | None:
        """Catalogue entry for a host: longest listed suffix, then brand, then prefix."""
        if len(host) > _MAX_HOST:
            # No listed host is longer than DNS allows, and the suffix walk below costs
            # labels x length: a client-made "a.a.a...." megabyte must not make it quadratic.
            return None
        h = host
        while True:
            known = self._hosts.get(h)
            if known is not None:
                return known
            dot = h.find(".")
            if dot < 0:
                break
            h = h[dot + 1 :]
        labels = host.split(".")
        if len(labels) >= 2:
            known = self._brands.get(labels[-2])
            if known is not None:
                return known
            if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVELS:
                known = self._brands.get(labels[-3])
                if known is not None:
                    return known
        for prefix, known in self._prefixes:
            if host.startswith(prefix):
                return known
        return None

    def _resolve_source(self, raw: str) -> _ResolvedSource:
        cached = self._source_cache.get(raw)
        if cached is not None:
            return cached
        known = self._aliases.get(_compact(raw))
        name = known.name if known is not None else ""
        if known is None:
            lowered = raw.strip().lower()
            m = _DOMAIN.match(lowered)
            if m is not None:  # utm_source=facebook.com, l.facebook.com, www.partner.io
                name = m.group(1)
                known = self._lookup_host(name)
                if known is not None:
                    name = known.name
            else:
                name = normalise_value(raw)
        resolved = _ResolvedSource(name, known)
        if len(self._source_cache) >= _CACHE_MAX:
            self._source_cache.clear()
        self._source_cache[raw] = resolved
        return resolved

    def _referrer(self, referrer: str) -> tuple[str | None, _Known | None]:
        cached = self._host_cache.get(referrer)
        if cached is not None:
            return cached
        host = referrer_host(referrer)
        result = (host, self._lookup_host(host) if host else None)
        if len(self._host_cache) >= _CACHE_MAX:
            self._host_cache.clear()
        self._host_cache[referrer] = result
        return result

    def _is_internal(self, host: str, url: str | None) -> bool:
        if host in self._site_domains or host.endswith(self._site_suffixes):
            return True
        if url is None:
            return False
        # Not memoised: page URLs are mostly unique, so a cache would only churn.
        page = referrer_host(url)
        if page is None:
            return False
        return host == page or host.endswith("." + page) or page.endswith("." + host)

    @staticmethod
    def _query(url: str) -> dict[str, str]:
        """First value of every query parameter, keys lower-cased."""
        params: dict[str, str] = {}
        try:
            query = urlsplit(url).query
        except ValueError:  # e.g. an invalid IPv6 literal: treat as untagged
            return params
        for key, value in parse_qsl(query):
            params.setdefault(key.lower(), value)
        return params

    # -- the hot path ---------------------------------------------------------------------

    def classify(self, touch: Mapping[str, Any]) -> Classification:
        """Classify one touch (a Touch record as a dict; missing keys count as absent)."""
        get = touch.get
        raw_source = _clean(get("utm_source"))
        raw_medium = _clean(get("utm_medium"))
        campaign = _clean(get("utm_campaign"))
        url = _clean(get("url"))
        props = get("properties") or {}
        params: Mapping[str, str] = {}
        if raw_source is None and raw_medium is None and campaign is None and url and self._tag_pattern.search(url):
            # The producer did not lift the tags out of the URL: read them here.
            params = self._query(url)
            raw_source = _clean(params.get("utm_source"))
            raw_medium = _clean(params.get("utm_medium"))
            campaign = _clean(params.get("utm_campaign"))
        detail = normalise_value(campaign) if campaign is not None else ""
        version = self.version
        ttype = get("touch_type") or "other"

        # 1. Offline touch types decide first.
        type_rule = self._first_types.get(ttype)
        if type_rule is not None:
            return self._offline(type_rule, props, raw_source, raw_medium, detail)

        resolved = self._resolve_source(raw_source) if raw_source is not None else None
        medium_key = _compact(raw_medium) if raw_medium is not None else ""
        if medium_key in self._missing_medium:
            medium_key = ""

        # 2. UTM tags.
        if medium_key:
            medium = self._mediums.get(medium_key)
            if resolved is not None:
                source = resolved.name
                category = resolved.known.category if resolved.known is not None else ""
            else:
                source, category = self._implied_source(get, props, params, url)
            if medium is None:
                return Classification(UNKNOWN, source, detail, "utm.unknown_medium", version, raw_source, raw_medium)
            refined = medium.by_category.get(category) if category else None
            if refined is not None:  # e.g. cpc from facebook: Paid Social
                return Classification(refined[0], source, detail, refined[1], version, raw_source, raw_medium)
            return Classification(medium.channel, source, detail, medium.rule, version, raw_source, raw_medium)
        if resolved is not None:
            click = self._click_id(get, props, params)
            if click is not None:
                return Classification(click[1], resolved.name, detail, click[0], version, raw_source, raw_medium)
            known = resolved.known
            if known is None:
                return Classification(
                    UNKNOWN, resolved.name, detail, "utm.unknown_source", version, raw_source, raw_medium
                )
            return Classification(
                known.channel, known.name, detail or known.detail, f"utm.source.{known.category}",
                version, raw_source, raw_medium,
            )

        # 3. Click ids without UTM tags.
        click = self._click_id(get, props, params)
        if click is not None:
            return Classification(click[1], click[2], detail, click[0], version, raw_source, raw_medium)

        # 4. The referrer.
        rule = "direct"
        referrer = _clean(get("referrer"))
        if referrer is not None:
            host, known = self._referrer(referrer)
            if host is not None:
                if self._is_internal(host, url):
                    rule = "referrer.internal"
                elif known is not None:
                    return Classification(
                        known.channel, known.name, detail or known.detail, f"referrer.{known.category}",
                        version, raw_source, raw_medium,
                    )
                else:
                    return Classification("Referral", host, detail, "referrer.other", version, raw_source, raw_medium)

        # 5. Touch types that only fill in for "no signal", then Direct.
        type_rule = self._fallback_types.get(ttype)
        if type_rule is not None:
            return self._offline(type_rule, props, raw_source, raw_medium, detail)
        return Classification(DIRECT, DIRECT_SOURCE, detail, rule, version, raw_source, raw_medium)

    def _click_id(
        self, get: Callable[[str], Any], props: Mapping[str, Any], params: Mapping[str, str]
    ) -> tuple[str, str, str] | None:
        """(rule, channel, source) of the first click id on the touch, its properties or URL."""
        # Runs for most web touches: plain truthiness first, the full check only on a hit.
        for key, rule, channel, source in self._click_ids:
            value = get(key)
            if value and _clean(value):
                return rule, channel, source
        for extra in (props, params):
            if extra:
                for key, rule, channel, source in self._click_ids:
                    value = extra.get(key)
                    if value and _clean(value):
                        return rule, channel, source
        return None

    def _implied_source(
        self, get: Callable[[str], Any], props: Mapping[str, Any], params: Mapping[str, str], url: str | None
    ) -> tuple[str, str]:
        """Source and category for a tagged medium without utm_source: click id, else referrer."""
        click = self._click_id(get, props, params)
        if click is not None:
            known = self._aliases.get(_compact(click[2]))
            return click[2], known.category if known is not None else ""
        referrer = _clean(get("referrer"))
        if referrer is not None:
            host, known = self._referrer(referrer)
            if host is not None and not self._is_internal(host, url):
                return (known.name, known.category) if known is not None else (host, "")
        return NOT_SET, ""

    def _offline(
        self,
        rule: _TypeRule,
        props: Mapping[str, Any],
        raw_source: str | None,
        raw_medium: str | None,
        detail: str,
    ) -> Classification:
        source = ""
        for key in self._source_props:
            value = _clean(props.get(key))
            if value is not None:
                source = normalise_value(value)
                break
        if not source:
            source = self._resolve_source(raw_source).name if raw_source is not None else rule.source
        if not detail:
            for key in self._detail_props:
                value = _clean(props.get(key))
                if value is not None:
                    detail = normalise_value(value)
                    break
        return Classification(rule.channel, source, detail, rule.rule, self.version, raw_source, raw_medium)


# --------------------------------------------------------------------------------------
# Loading and validation


def _host_key(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("www.")


def touch_type_names() -> frozenset[str]:
    """The TouchType symbols of the current Touch schema: the only valid touch_types keys."""
    from schemas.codec import schema_info

    for field in schema_info("Touch").raw["fields"]:
        if field["name"] == "touch_type":
            return frozenset(field["type"]["symbols"])
    raise TaxonomyError("the Touch schema has no touch_type field")  # pragma: no cover - schema invariant


def _claim(problems: list[str], owners: dict[str, str], key: str, owner: str, *, invalid: str | None,
           clash: str, show: Callable[[str], str] = repr) -> None:
    """Record that ``key`` names ``owner``: a problem when it is invalid or names another already.

    ``clash`` is the problem's text up to the other owner, which ``show`` renders.
    """
    if invalid is not None:
        problems.append(invalid)
    elif owners.setdefault(key, owner) != owner:
        problems.append(clash + show(owners[key]))


def _check(spec: _TaxonomyFile) -> list[str]:
    """Everything wrong with a well-typed file, as 'where: what' lines (empty when fine)."""
    problems: list[str] = []
    channels = set(spec.channels)
    seen: set[str] = set()
    for i, channel in enumerate(spec.channels):
        if not channel.strip():
            problems.append(f"channels[{i}]: empty channel name")
        if channel in seen:
            problems.append(f"channels[{i}]: {channel!r} is listed twice")
        seen.add(channel)
    for required in (DIRECT, UNKNOWN):
        if required not in channels:
            problems.append(f"channels: must include {required!r}")

    def need_channel(where: str, channel: str) -> None:
        if channel not in channels:
            problems.append(f"{where}: channel {channel!r} is not in channels")

    valid_types = touch_type_names()
    for ttype, t in spec.touch_types.items():
        if ttype not in valid_types:
            problems.append(f"touch_types.{ttype}: not a touch type (one of {', '.join(sorted(valid_types))})")
        need_channel(f"touch_types.{ttype}", t.channel)
    for name, cat in spec.categories.items():
        if not _IDENTIFIER.match(name):
            problems.append(f"categories.{name}: category names are lower-case identifiers")
        need_channel(f"categories.{name}", cat.channel)

    aliases: dict[str, str] = {}
    hosts: dict[str, str] = {}
    brands: dict[str, str] = {}
    for name, src in spec.sources.items():
        where = f"sources.{name}"
        if not normalise_value(name):
            problems.append(f"{where}: empty source name")
        if src.category not in spec.categories:
            problems.append(f"{where}.category: {src.category!r} is not in categories")
        for alias in (name, *src.aliases):
            key = _compact(alias)
            _claim(problems, aliases, key, name,
                   invalid=None if key else f"{where}.aliases: {alias!r} is empty once normalised",
                   clash=f"{where}.aliases: {alias!r} already means source ")
        for host in src.hosts:
            key = _host_key(host)
            _claim(problems, hosts, key, name,
                   invalid=None if _HOST_SPEC.match(key)
                   else f"{where}.hosts: {host!r} is not a host name (no scheme, path or port)",
                   clash=f"{where}.hosts: {host!r} already belongs to source ")
        for brand in src.brands:
            key = brand.strip().lower()
            _claim(problems, brands, key, name,
                   invalid=f"{where}.brands: {brand!r} must be one name without dots (e.g. google)"
                   if not key or "." in key else None,
                   clash=f"{where}.brands: {brand!r} already belongs to source ")
        for prefix in src.host_prefixes:
            if not prefix.strip():
                problems.append(f"{where}.host_prefixes: empty prefix")

    medium_values: dict[str, str] = {}
    for group_name, group in spec.mediums.items():
        where = f"mediums.{group_name}"
        if not _IDENTIFIER.match(group_name):
            problems.append(f"{where}: group names are lower-case identifiers")
        need_channel(where, group.channel)
        for category, channel in group.by_category.items():
            if category not in spec.categories:
                problems.append(f"{where}.by_category: {category!r} is not in categories")
            need_channel(f"{where}.by_category.{category}", channel)
        for value in group.values:
            key = _compact(value)
            _claim(problems, medium_values, key, group_name,
                   invalid=None if key else f"{where}.values: {value!r} is empty once normalised",
                   clash=f"{where}.values: {value!r} is already in ", show=lambda group: f"mediums.{group}")
    for value in spec.missing_medium:
        key = _compact(value)
        if key in medium_values:
            problems.append(f"missing_medium: {value!r} is also in mediums.{medium_values[key]}")
    for key, click in spec.click_ids.items():
        if not _IDENTIFIER.match(key):
            problems.append(f"click_ids.{key}: a click id is a lower-case query parameter name")
        need_channel(f"click_ids.{key}", click.channel)
    for domain in spec.site_domains:
        if not _HOST_SPEC.match(_host_key(domain)):
            problems.append(f"site_domains: {domain!r} is not a host name")
    return problems


def _format_validation(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg']}")
    return lines


def load_taxonomy(path: str | Path | None = None, site_domains: Sequence[str] = ()) -> Taxonomy:
    """Read, validate and compile a taxonomy file.

    ``path`` None means the default rules shipped with leadstream; a user's file
    replaces them entirely. ``site_domains`` are the site's own domains (a referrer on
    them is internal), added to the file's ``site_domains``. Raises
    :class:`TaxonomyError` naming the file and every problem found.
    """
    file = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"taxonomy file {file}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaxonomyError(f"taxonomy file {file}: not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise TaxonomyError(
            f"taxonomy file {file}: expected a mapping with version, channels and rule sections, "
            f"got {type(data).__name__}"
        )
    if isinstance(data.get("version"), int | float):
        # YAML reads 2026.10 as the float 2026.1: ask for quotes rather than guess.
        raise TaxonomyError(f"taxonomy file {file} is invalid:\n  version: write it as a quoted string, "
                            f"e.g. version: \"{data['version']}\"")
    try:
        spec = _TaxonomyFile.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation(exc)
        raise TaxonomyError(f"taxonomy file {file} is invalid:\n  " + "\n  ".join(problems)) from exc
    problems = _check(spec)
    if problems:
        raise TaxonomyError(f"taxonomy file {file} is invalid:\n  " + "\n  ".join(problems))
    return Taxonomy(spec, path=file, site_domains=site_domains)


def taxonomy_from_settings(settings: Settings) -> Taxonomy:
    """The taxonomy a process should use: ``LEADSTREAM_TAXONOMY`` or the default, plus
    ``LEADSTREAM_SITE_DOMAINS``."""
    return load_taxonomy(settings.taxonomy_path, settings.site_domain_list)
