"""Money in one currency, against ``tests/oracle``: mixed-currency deals, dated rates, spend, roi.

A generated dataset's deals are given currencies (USD, EUR with rates on several dates,
GBP whose first rate comes after some of its deals closed, JPY with no rate at all); rate
rows (one of them corrected by a later import) and spend rows (per channel › source ›
campaign and day, some in EUR, one in a currency without a rate) go through the
product's own validation onto the ``fx-rates`` and ``spend`` topics; the enriched feed
built from the oracle goes through the real broker into a real sink. Every money figure
of ``sources``, ``quarterly``, ``contact-sources``, ``attribution`` and every row of
``roi`` (each level, by quarter or not, with and without a window) must equal the oracle,
and ``quality`` must list exactly the deals without a rate.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ground.settings import Settings
from ground.vocabulary import now_ms
from leadstream.testing.waiting import wait_for
from producers.events import fx_rate_record, spend_record
from sinks.clickhouse import connect
from sinks.report_params import ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from tests.integration.sink_support import produce
from tests.integration.test_reports_oracle import _classifier, build_feed
from tests.oracle.batch import Batch
from tests.oracle.generator import generate
from tests.oracle.reports import DAY_MS, Reports, diff, roi

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _day(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def test_every_money_figure_is_converted_as_the_oracle_says(topics: Settings) -> None:
    settings = topics
    classify = _classifier()
    data = generate(seed=13, contacts=250, touches=2500, deals=90, merges=8)
    rng = random.Random(5)
    currency_of = {}
    for deal_id in sorted({d["deal_id"] for d in data.deal_changes}):
        currency_of[deal_id] = rng.choices(["USD", "EUR", "GBP", "JPY"], weights=[4, 4, 2, 1])[0]
    for change in data.deal_changes:
        change["currency"] = currency_of[change["deal_id"]]
    arrivals = data.arrival(seed=3)
    times = sorted(r["event_time"] for _, _, r in arrivals)
    first, last = times[0], times[-1]
    span = last - first
    received = now_ms()
    rate_rows = [{"date": _day(first + k * span // 5), "currency": "EUR", "rate": str(1.05 + 0.03 * k)}
                 for k in range(5)]
    rate_rows.append({"date": _day(first + span // 2), "currency": "GBP", "rate": "1.27"})
    rate_rows.append({"date": _day(first + 3 * span // 4), "currency": "GBP", "rate": "1.31"})
    rate_rows.append({"date": _day(first + 2 * span // 5), "currency": "EUR", "rate": "1.5"})  # corrected below
    corrected = {"date": _day(first + 2 * span // 5), "currency": "EUR", "rate": "1.111"}
    rates = [fx_rate_record(r, received_at=received + i) for i, r in enumerate([*rate_rows, corrected])]

    batch = Batch(arrivals, classify)
    spend_fields = []
    for t in data.touches[::40]:
        channel, source, detail = batch.classification(t)
        spend_fields.append({"date": _day(t["event_time"]), "channel": channel, "source": source,
                             "campaign": detail, "amount": f"{rng.randrange(50, 900)}.5",
                             "currency": rng.choice(["USD", "USD", "EUR", "CHF"])})
    spend_fields.append({"date": _day(first), "channel": "Podcasts", "source": "spotify", "campaign": "q1",
                         "amount": "1200", "currency": "USD"})  # no lead ever came from it
    spend = [spend_record(f, received_at=received) for f in spend_fields]
    assert len({s["event_id"] for s in spend}) > 20

    oracle = Reports(arrivals, classify,
                     rates=[(r["currency"], r["event_time"], r["rate"]) for r in rates],
                     spend=[{"day": s["event_time"], **{k: s[k] for k in ("channel", "source", "campaign", "amount",
                                                                          "currency")}} for s in spend])
    unconverted = oracle.unconverted_deals()
    currencies = {currency_of[d] for d in unconverted}
    assert "JPY" in currencies and len(unconverted) < len(oracle.deals)
    feed = [*build_feed(data, arrivals, batch), *[("fx-rates", r["currency"], r) for r in rates],
            *[("spend", s["event_id"], s) for s in spend]]
    expected_rows = produce(settings, feed)

    db = connect(settings)
    service = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(service.sink.stats.rows.get(t, 0) >= n for t, n in expected_rows.items()),
                 300, f"the sink to acknowledge {dict(expected_rows)}")
    finally:
        service.stop()

    problems: list[str] = []
    compared = 0

    def check(name: str, want: list[dict[str, Any]], got: Any, key: list[str], zero_missing: bool = False) -> None:
        nonlocal compared
        assert isinstance(got, list)
        compared += 1
        problems.extend(f"{name}: {p}" for p in diff(want, got, key=key, zero_missing=zero_missing))

    window = ("2025-03-01", "2025-09-01")
    for by in ("channel", "source", "detail"):
        check(f"sources --by {by}", oracle.sources(by), run_report(db, "sources", ReportParams(by=by)),
              ["lead_source"])
        check(f"quarterly --by {by}", oracle.quarterly(by), run_report(db, "quarterly", ReportParams(by=by)),
              ["quarter", "lead_source"])
        for by_quarter in (False, True):
            key = ["quarter", "lead_source"] if by_quarter else ["lead_source"]
            check(f"roi --by {by}{' --by-quarter' if by_quarter else ''}", roi(oracle, by, by_quarter=by_quarter),
                  run_report(db, "roi", ReportParams(by=by, by_quarter=by_quarter)), key)
            params = ReportParams.parse({"by": by, "since": window[0], "until": window[1],
                                         "by_quarter": str(by_quarter).lower()})
            check(f"roi --by {by} --since/--until", roi(oracle, by, since=window[0], until=window[1],
                                                        by_quarter=by_quarter), run_report(db, "roi", params), key)
    check("contact-sources", oracle.contact_sources(), run_report(db, "contact-sources", ReportParams()),
          ["contact_source"])
    for model in ("linear", "w_shaped", "time_decay"):
        check(f"attribution --model {model}", oracle.attribution(model),
              run_report(db, "attribution", ReportParams(model=model)), ["channel"], zero_missing=True)  # type: ignore[arg-type]
    quality = run_report(db, "quality", ReportParams(top=1000))
    assert isinstance(quality, dict)
    listed = [r["deal_id"] for r in quality["unconverted_deals"]]
    unconverted_spend = list(quality["unconverted_spend"])
    roi_rows = {r["lead_source"]: r for r in run_report(db, "roi", ReportParams())}  # type: ignore[union-attr]
    db.close()
    revenue = sum(r["revenue"] for r in oracle.sources("channel"))
    print(f"money: {len(oracle.deals)} deals in {sorted(set(currency_of.values()))}, {len(unconverted)} without a "
          f"rate ({sorted(currencies)}), {len(rates)} rate rows, {len(spend)} spend rows; revenue {revenue:,.2f} USD; "
          f"{compared} reports compared, {len(problems)} differences")
    assert problems == [], "\n".join(problems[:40])
    assert listed == unconverted
    assert unconverted_spend and {r["currency"] for r in unconverted_spend} == {"CHF"}
    assert roi_rows["Podcasts"]["leads"] == 0 and roi_rows["Podcasts"]["cost_per_lead"] is None


def test_import_validation_of_spend_and_rates() -> None:
    """Bad rows are refused with a reason; a re-imported row keeps its event id."""
    from producers.events import Rejected

    received = now_ms()
    good = {"date": "2025-05-01", "channel": "Paid Search", "source": "google", "campaign": "brand",
            "amount": "1,250.50", "currency": "eur"}
    first, again = spend_record(good, received_at=received), spend_record(good, received_at=received + 5)
    assert first["event_id"] == again["event_id"] and first["amount"] == 1250.5 and first["currency"] == "EUR"
    assert first["event_time"] % DAY_MS == 0
    assert spend_record({**good, "amount": "99"}, received_at=received)["event_id"] == first["event_id"]
    for bad, reason in (({**good, "amount": "-1"}, "invalid_amount"),
                        ({**good, "currency": "EURO"}, "invalid_currency"),
                        ({k: v for k, v in good.items() if k != "date"}, "missing_field"),
                        ({k: v for k, v in good.items() if k != "channel"}, "missing_field"),
                        ({**good, "date": "yesterday"}, "invalid_date")):
        with pytest.raises(Rejected) as refused:
            spend_record(bad, received_at=received)
        assert refused.value.code == reason, (bad, refused.value.code)
    rate = fx_rate_record({"date": "2025-05-01", "currency": "gbp", "rate": "1.27"}, received_at=received)
    assert rate["currency"] == "GBP" and rate["rate"] == 1.27
    for bad, reason in (({"date": "2025-05-01", "currency": "GBP", "rate": "0"}, "invalid_rate"),
                        ({"date": "2025-05-01", "currency": "GBP", "rate": "x"}, "invalid_rate"),
                        ({"date": "2025-05-01", "rate": "1.2"}, "missing_field")):
        with pytest.raises(Rejected) as refused:
            fx_rate_record(bad, received_at=received)
        assert refused.value.code == reason, (bad, refused.value.code)
