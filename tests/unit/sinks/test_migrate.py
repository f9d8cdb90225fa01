"""Migrations: ordering, statement splitting, and the generated cluster variant."""

from __future__ import annotations

import pytest

from sinks.migrate import load_migrations, render


def test_migrations_are_versioned_in_order() -> None:
    """Files load in version order with unique versions and at least one statement each."""
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert all(m.statements for m in migrations)


def test_single_node_render_fills_identifiers_only() -> None:
    """One node: database substituted, no ON CLUSTER, engines untouched."""
    touches = next(s for m in load_migrations() for s in m.statements if ".touches {on_cluster}" in s)
    [sql] = render(touches, "leadstream")
    assert "CREATE TABLE IF NOT EXISTS leadstream.touches" in sql
    assert "ON CLUSTER" not in sql and "{db}" not in sql
    assert "ENGINE = ReplacingMergeTree(processed_at)" in sql


def test_cluster_render_makes_replicated_local_and_distributed_tables() -> None:
    """Cluster: Replicated engine on <table>_local ON CLUSTER plus a Distributed table sharded by the key."""
    touches = next(s for m in load_migrations() for s in m.statements if ".touches {on_cluster}" in s)
    local, distributed = render(touches, "leadstream", "analytics")
    assert "CREATE TABLE IF NOT EXISTS leadstream.touches_local ON CLUSTER analytics" in local
    assert ("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
            "'{replica}', processed_at)") in local
    assert distributed == ("CREATE TABLE IF NOT EXISTS leadstream.touches ON CLUSTER analytics AS "
                           "leadstream.touches_local ENGINE = Distributed(analytics, leadstream, touches_local, "
                           "cityHash64(event_id))")
    view = next(s for m in load_migrations() for s in m.statements if "VIEW IF NOT EXISTS {db}.deals_latest" in s)
    [sql] = render(view, "leadstream", "analytics")
    assert "leadstream.deals_latest ON CLUSTER analytics AS" in sql


def test_cluster_render_alters_and_truncates_the_local_tables() -> None:
    """Table settings and truncation act on the replicated ``_local`` table, not the Distributed one."""
    [alter] = render("ALTER TABLE {db}.lead_counts {on_cluster} MODIFY SETTING x = 1", "leadstream", "analytics")
    assert alter == "ALTER TABLE leadstream.lead_counts_local ON CLUSTER analytics MODIFY SETTING x = 1"
    [truncate] = render("TRUNCATE TABLE {db}.lead_counts {on_cluster}", "leadstream", "analytics")
    assert truncate == "TRUNCATE TABLE leadstream.lead_counts_local ON CLUSTER analytics"
    assert render("TRUNCATE TABLE {db}.lead_counts {on_cluster}", "leadstream") == [
        "TRUNCATE TABLE leadstream.lead_counts "]


def test_identifiers_are_checked() -> None:
    """A database or cluster name that is not an identifier is refused, never pasted into DDL."""
    with pytest.raises(ValueError):
        render("CREATE DATABASE IF NOT EXISTS {db} {on_cluster}", "x; DROP TABLE y")
    with pytest.raises(ValueError):
        render("CREATE DATABASE IF NOT EXISTS {db} {on_cluster}", "ok", "c' OR 1")
