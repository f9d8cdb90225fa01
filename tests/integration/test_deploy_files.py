"""The Docker stack's observability files: they parse, name only metrics the processes expose,
and every ClickHouse query of the Grafana dashboard runs on the real engine.

No Docker engine runs here, so Prometheus and Grafana themselves are not started: what can
be checked without them is. Each rule's expression and each Prometheus panel must use
metrics that docs/metrics.md, docs/alerts.md or docs/capture.md list (so a renamed metric
fails here), and the SQL panels (Grafana's ``$__timeFilter`` macro replaced by a true
condition) must run on a migrated database.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml

from ground.settings import Settings
from sinks.clickhouse import connect
from sinks.migrate import apply_migrations

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(leadstream_[a-z_]+)")


def _documented_metrics() -> set[str]:
    text = "".join((ROOT / "docs" / name).read_text() for name in ("metrics.md", "alerts.md", "capture.md"))
    return set(METRIC.findall(text))


def test_prometheus_config_and_rules_parse_and_use_documented_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs == {"leadstream-collector": ["collector:8080"], "leadstream-worker": ["worker:9464"],
                    "leadstream-dashboard": ["dashboard:8124"]}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    documented = _documented_metrics()
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"} and rule["expr"], rule
            names.append(rule["alert"])
            used = {m.removesuffix("_total") for m in METRIC.findall(rule["expr"])}
            assert used <= {m.removesuffix("_total") for m in documented}, (rule["alert"], used - documented)
    assert "LeadstreamDataQuality" in names and len(names) == len(set(names))
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"prometheus", "grafana", "dashboard"} <= set(compose["services"])


def test_every_grafana_panel_query_runs(clickhouse_url: str, tmp_path: Path) -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "leadstream.json").read_text())
    provisioning = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "clickhouse.yml").read_text())
    uids = {d["uid"] for d in provisioning["datasources"]}
    documented = {m.removesuffix("_total") for m in _documented_metrics()}
    database = f"ls_grafana_{uuid.uuid4().hex[:8]}"
    settings = Settings(CLICKHOUSE_URL=clickhouse_url, LEADSTREAM_CLICKHOUSE_DATABASE=database,
                        LEADSTREAM_DATA_DIR=str(tmp_path))
    db = connect(settings)
    ran = 0
    try:
        apply_migrations(db)
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
            for target in panel["targets"]:
                if "rawSql" in target:
                    sql = target["rawSql"].replace("$__timeFilter(event_time)", "1 = 1")
                    db.query(sql.replace("leadstream.", f"{database}."))
                    ran += 1
                else:
                    used = {m.removesuffix("_total") for m in METRIC.findall(target["expr"])}
                    assert used <= documented, (panel["title"], used - documented)
    finally:
        db.command(f"DROP DATABASE IF EXISTS {database}")
        db.close()
    assert ran >= 3
