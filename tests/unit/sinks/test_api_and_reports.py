"""Query API token rule, report parameters and row conversion: pure functions, nothing running.

The SQL guard needs the engine's parser, so its tests are in
``tests/integration/test_sink_sql_guard.py``.
"""

from __future__ import annotations

from datetime import date

import pytest

from ground.settings import Settings
from sinks.api import require_query_token
from sinks.errors import QueryTokenError, ReportError
from sinks.report_params import MODELS, ReportParams
from sinks.reports import report_sql
from sinks.rows import TABLES


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("127.0.1.1", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("sink.example", False), ("", False)])
def test_query_host_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses count as local; any other host can be reached from elsewhere."""
    assert Settings(LEADSTREAM_QUERY_HOST=host).query_host_is_loopback is loopback


def test_query_token_is_required_beyond_loopback() -> None:
    """Beyond loopback the token is required (a blank one is none); on loopback it is optional."""
    with pytest.raises(QueryTokenError, match=r"0\.0\.0\.0:8124.*LEADSTREAM_QUERY_TOKEN"):
        require_query_token(Settings(LEADSTREAM_QUERY_HOST="0.0.0.0", LEADSTREAM_QUERY_TOKEN=None))
    with pytest.raises(QueryTokenError):
        require_query_token(Settings(LEADSTREAM_QUERY_HOST="0.0.0.0", LEADSTREAM_QUERY_TOKEN="  "))
    assert require_query_token(Settings(LEADSTREAM_QUERY_HOST="0.0.0.0", LEADSTREAM_QUERY_TOKEN="t0k")) == "t0k"
    assert require_query_token(Settings(LEADSTREAM_QUERY_HOST="127.0.0.1", LEADSTREAM_QUERY_TOKEN=None)) is None
    assert require_query_token(Settings(LEADSTREAM_QUERY_HOST="127.0.0.1", LEADSTREAM_QUERY_TOKEN="t")) == "t"
    assert "t0k" not in repr(Settings(LEADSTREAM_QUERY_TOKEN="t0k"))


def test_params_parse_and_bind_values() -> None:
    """Query-string options become typed parameters; dates are UTC midnights in ms, half-open."""
    p = ReportParams.parse({"by": "source", "since": "2026-01-01", "until": "2026-04-01", "model": "w_shaped",
                            "half_life": "3.5", "include_open_lost": "true"})
    assert p.since == date(2026, 1, 1) and p.by == "source" and p.include_open_lost
    values = p.sql_parameters()
    assert values["since_ms"] == 1_767_225_600_000 and values["ranged"] == 1
    assert values["half_life_ms"] == 3.5 * 86_400_000
    assert (values["s_first"], values["s_lead"], values["s_deal"], values["s_close"], values["s_other"]) == MODELS[
        "w_shaped"]
    assert ReportParams.parse(p.to_query()) == p


@pytest.mark.parametrize("raw", [{"by": "campaign"}, {"model": "random"}, {"half_life": "-1"},
                                 {"since": "yesterday"}])
def test_bad_params_are_refused(raw: dict[str, str]) -> None:
    """Unknown levels, models, non-positive half-lives and bad dates are clear errors."""
    with pytest.raises(ReportError):
        ReportParams.parse(raw)


def test_model_shares_sum_to_one() -> None:
    """Every positional model's shares add up to 100% (time_decay has its own weights)."""
    for name, shares in MODELS.items():
        if name != "time_decay":
            assert sum(shares) == pytest.approx(1.0), name


def test_report_sql_takes_values_as_parameters() -> None:
    """Report SQL only gets the database identifier substituted; values stay {name:Type} parameters."""
    sql = report_sql("sources", "leadstream")
    assert "{db}" not in sql and "leadstream.lead_counts" in sql and "{since_ms:Int64}" in sql
    with pytest.raises(ReportError):
        report_sql("sources", "x;DROP")


def test_rows_convert_optional_fields() -> None:
    """Optional strings become '' in join/group columns; versions and maps pass through."""
    spec = TABLES["EnrichedTouch"]
    row = spec.convert({"event_id": "e", "event_time": 1, "received_at": 2, "processed_at": 3,
                        "touch_type": "page_view", "channel": "Direct", "source": "direct"})
    assert dict(zip(spec.columns, row, strict=True))["contact_id"] == ""
    with pytest.raises(KeyError):
        spec.convert({"event_id": "e"})


def test_the_plain_variant_of_attribution_has_the_same_ctes_without_materializing_them() -> None:
    import re as _re

    from sinks.sql_files import plain_ctes, report_sql

    sql = report_sql("attribution", "leadstream")
    plain = plain_ctes(sql)
    def code(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))

    assert "AS MATERIALIZED" in code(sql) and "enable_materialized_cte" in code(sql)
    assert "MATERIALIZED" not in code(plain) and "enable_materialized_cte" not in code(plain)
    names = _re.compile(r"^    (\w+) AS(?: MATERIALIZED)?\n    \(", _re.M)
    assert names.findall(plain) == names.findall(sql) and len(names.findall(sql)) >= 10
