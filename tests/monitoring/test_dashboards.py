"""Dashboards and rules as code: the committed files are what the code generates, every panel
query is valid PromQL, and every metric a panel or rule reads is one the services export (or a
recording rule's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from dashboards import DASHBOARDS
from generate import DASHBOARDS_DIR, RULE_FILES, outputs, prometheus_rule, stale

# Metrics that work in progress elsewhere will export, when rules and panels use them before
# a service does. Empty now: every service exports what the rules and panels read. When one
# listed here is exported, test_awaited_metrics_are_not_exported_yet fails: take it off.
AWAITED_METRICS: frozenset[str] = frozenset()
# Grafana's interval variable is not PromQL; any duration stands in for it.
GRAFANA_VARIABLES = {"$__rate_interval": "5m"}


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of a dashboard's JSON, rows' panels included."""
    for panel in dashboard["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                yield nested["title"], target["expr"]


def committed_dashboard(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DASHBOARDS_DIR / f"{name}.json").read_text())
    return document


def parse(expr: str) -> promql_parser.Expr:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            names.add(node.name)

    promql_parser.walk(parse(expr), visit)
    return names


def rules() -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule()["spec"]["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def test_generated_files_are_up_to_date() -> None:
    out_of_date = [str(path) for path in stale(outputs())]

    assert out_of_date == [], "run `make monitoring` and commit the result"


def test_the_prometheus_rule_holds_every_rule_group() -> None:
    expected = [
        group["name"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
    ]
    groups = [group["name"] for group in prometheus_rule()["spec"]["groups"]]

    assert groups == expected
    assert len(set(groups)) == len(groups)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_parses(name: str) -> None:
    queries = list(panel_queries(committed_dashboard(name)))

    assert queries
    for title, expr in queries:
        try:
            parse(expr)
        except ValueError as error:
            pytest.fail(f"{name} / {title}: {expr!r} does not parse: {error}")


def test_a_broken_query_is_caught() -> None:
    with pytest.raises(ValueError, match=r"."):
        parse("sum by (route) (rate(http_requests_total[$__rate_interval])")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_read_only_exported_metrics(
    name: str, exported_metrics: dict[str, set[str]]
) -> None:
    _, service = DASHBOARDS[name]
    exported = exported_metrics[service] if service else set().union(*exported_metrics.values())
    known = exported | recorded_names() | AWAITED_METRICS
    for title, expr in panel_queries(committed_dashboard(name)):
        unknown = metric_names(expr) - known
        assert not unknown, (
            f"{name} / {title}: {sorted(unknown)} not exported by {service or 'any service'}"
        )


def test_rules_read_only_exported_metrics(exported_metrics: dict[str, set[str]]) -> None:
    known = set().union(*exported_metrics.values()) | recorded_names() | AWAITED_METRICS
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule['record']}: {sorted(unknown)} not exported"


def test_the_services_export_what_the_rules_are_built_on(
    exported_metrics: dict[str, set[str]],
) -> None:
    """A guard on the fixture itself: it sees each service's own metrics, and only those."""
    common = {"http_requests_total", "http_request_duration_seconds_bucket", "readiness_check_up"}
    for names in exported_metrics.values():
        assert common <= names
    assert "gateway_upstream_circuit_open" in exported_metrics["gateway"]
    assert "jwks_refresh_failures_total" in exported_metrics["gateway"]
    assert "users_cache_bypassed_total" in exported_metrics["users"]
    assert "users_cache_bypassed_total" not in exported_metrics["auth"]
    assert "gateway_upstream_circuit_open" not in exported_metrics["users"]


def test_awaited_metrics_are_not_exported_yet(exported_metrics: dict[str, set[str]]) -> None:
    exported = set().union(*exported_metrics.values())

    assert AWAITED_METRICS.isdisjoint(exported), (
        f"{sorted(AWAITED_METRICS & exported)} are exported now: remove them from AWAITED_METRICS"
    )


def test_dashboard_files_are_the_listed_dashboards() -> None:
    assert {path.stem for path in Path(DASHBOARDS_DIR).glob("*.json")} == set(DASHBOARDS)
