"""Grafana dashboards of Gatehouse, as code (grafana-foundation-sdk).

`make monitoring` writes them as JSON into infra/k8s/components/monitoring/dashboards/, where
the monitoring component turns each into a ConfigMap for Grafana's dashboard sidecar. Panels
query the recording rules of prometheus/recording.rules.yml where one exists, and the raw
metrics otherwise; the `service` label names the service (see docs/operations.md, "Labels").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cog
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
TAGS = ["gatehouse"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    thresholds: tuple[float, ...] = ()


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...]


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[RowSpec, ...]


def _panel(spec: PanelSpec, panel_id: int) -> cog.Builder[Any]:
    builder: timeseries.Panel | stat.Panel = (
        stat.Panel() if spec.kind == "stat" else timeseries.Panel().min(0)
    )
    builder = (
        builder.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .height(8)
        .span(8)
    )
    if spec.thresholds:
        steps = [Threshold(value=None, color="green")]
        colours = ("orange", "red")
        steps += [
            Threshold(value=v, color=c) for v, c in zip(spec.thresholds, colours, strict=False)
        ]
        builder = builder.thresholds(
            grafana.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
        )
    for index, query in enumerate(spec.queries):
        builder = builder.with_target(
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .expr(query.expr)
            .legend_format(query.legend)
            .datasource(DATASOURCE)
        )
    return builder


def _single(title: str, description: str, expr: str, legend: str, unit: str = "short") -> PanelSpec:
    """A time series panel of one query."""
    return PanelSpec(title, description, (Query(expr, legend),), unit=unit)


def build(spec: DashboardSpec) -> grafana.Dashboard:
    board = (
        grafana.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(
            grafana.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .link(
            grafana.DashboardLink("Gatehouse")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(as_dropdown=True)
            .include_vars(include_vars=True)
            .keep_time(keep_time=True)
        )
    )
    # An expanded row is followed by its panels at the top level (a row lists panels itself
    # only while collapsed). Ids are unique and stable, so links to a panel keep working.
    panel_id = 0
    for row in spec.rows:
        panel_id += 1
        board = board.with_row(grafana.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            board = board.with_panel(_panel(panel, panel_id))
    return board


# --- panels shared by the dashboards -------------------------------------------------------


def _red_by_route(service: str) -> RowSpec:
    selector = f'service="{service}"'
    return RowSpec(
        "Requests, errors, duration per route",
        (
            _single(
                "Requests per second",
                "Per route template and method (5 min rate).",
                (
                    "sum by (method, route) "
                    f"(service_route_method:http_requests:rate5m{{{selector}}})"
                ),
                "{{method}} {{route}}",
                unit="reqps",
            ),
            _single(
                "5xx ratio",
                "Share of answers that were 5xx, per route (5 min rate).",
                f"service_route_method:http_request_errors:ratio_rate5m{{{selector}}}",
                "{{method}} {{route}}",
                unit="percentunit",
            ),
            _single(
                "Latency p99",
                "99th percentile of the time to the end of the response, per route.",
                (
                    "service_route_method:http_request_duration_seconds:quantile_rate5m"
                    f'{{{selector},quantile="0.99"}}'
                ),
                "{{method}} {{route}}",
                unit="s",
            ),
            _single(
                "Latency p50",
                "Median time to the end of the response, per route.",
                (
                    "service_route_method:http_request_duration_seconds:quantile_rate5m"
                    f'{{{selector},quantile="0.5"}}'
                ),
                "{{method}} {{route}}",
                unit="s",
            ),
            _single(
                "Answers by status",
                "All routes, by HTTP status.",
                f"sum by (status) (rate(http_requests_total{{{selector}}}[{RATE}]))",
                "{{status}}",
                unit="reqps",
            ),
        ),
    )


def _saturation(service: str) -> RowSpec:
    selector = f'service="{service}"'
    return RowSpec(
        "Saturation",
        (
            _single(
                "CPU per pod",
                "Cores used per pod: one uvicorn worker per pod, so 1 is the ceiling.",
                f"sum by (pod) (rate(process_cpu_seconds_total{{{selector}}}[{RATE}]))",
                "{{pod}}",
                unit="short",
            ),
            _single(
                "Resident memory per pod",
                "Compare with the container's memory limit.",
                f"max by (pod) (process_resident_memory_bytes{{{selector}}})",
                "{{pod}}",
                unit="bytes",
            ),
            _single(
                "Open file descriptors per pod",
                "Sockets included: a leak of connections shows here first.",
                f"max by (pod) (process_open_fds{{{selector}}})",
                "{{pod}}",
            ),
        ),
    )


def _readiness(service: str) -> PanelSpec:
    return _single(
        "Readiness checks",
        "1 when the check passed at the last /ready, per pod (alert: DependencyDown).",
        f'min by (check, pod) (readiness_check_up{{service="{service}"}})',
        "{{check}} {{pod}}",
    )


def _jwks(service: str) -> tuple[PanelSpec, ...]:
    selector = f'service="{service}"'
    return (
        _single(
            "JWKS fetch failures",
            "Failed fetches of auth's key set (alert: JwksRefreshFailing).",
            f"sum by (pod) (increase(jwks_refresh_failures_total{{{selector}}}[{RATE}]))",
            "{{pod}}",
        ),
        _single(
            "Time since the last JWKS fetch",
            "Grows while no token needs a refresh; only failures with it are a problem.",
            f"time() - max by (pod) (jwks_last_success_timestamp_seconds{{{selector}}})",
            "{{pod}}",
            unit="s",
        ),
    )


def _events(service: str) -> RowSpec:
    selector = f'service="{service}"'
    return RowSpec(
        "Events",
        (
            _single(
                "Published",
                "Events this service published, per stream.",
                f"sum by (stream) (rate(events_published_total{{{selector}}}[{RATE}]))",
                "{{stream}}",
                unit="ops",
            ),
            PanelSpec(
                "Handled and failed",
                "Events this service's consumer groups handled or failed (a failure is retried).",
                (
                    Query(
                        "sum by (stream, group) "
                        f"(rate(events_handled_total{{{selector}}}[{RATE}]))",
                        "handled {{stream}}/{{group}}",
                    ),
                    Query(
                        f"sum by (stream, group) (rate(events_failed_total{{{selector}}}[{RATE}]))",
                        "failed {{stream}}/{{group}}",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Consumer lag and dead letters",
                "Undelivered events per group (alert: EventConsumerLagging) and events moved "
                "to the dead-letter stream (alert: EventsDeadLettered).",
                (
                    Query(
                        f"max by (stream, group) (events_consumer_lag{{{selector}}})",
                        "lag {{stream}}/{{group}}",
                    ),
                    Query(
                        "sum by (stream, group) "
                        f"(increase(events_dead_lettered_total{{{selector}}}[{RATE}]))",
                        "dead-lettered {{stream}}/{{group}}",
                    ),
                ),
            ),
        ),
    )


# --- the dashboards ------------------------------------------------------------------------


def _service_dashboard(
    service: str, description: str, dependencies: RowSpec, *, events: bool = True
) -> DashboardSpec:
    """One service's dashboard: requests per route, its ``dependencies``, saturation and, for a
    service that publishes or consumes events, its events."""
    rows = (_red_by_route(service), dependencies, _saturation(service))
    return DashboardSpec(
        uid=f"gatehouse-{service}",
        title=f"Gatehouse {service}",
        description=description,
        rows=(*rows, _events(service)) if events else rows,
    )


def overview() -> DashboardSpec:
    return DashboardSpec(
        uid="gatehouse-overview",
        title="Gatehouse overview",
        description="SLOs, traffic and dependencies of the whole stack (docs/operations.md).",
        rows=(
            RowSpec(
                "SLOs",
                (
                    PanelSpec(
                        "Error budget burn rate (1 h)",
                        "1 spends the 30-day budget in 30 days; the fast alert fires at 14.4, "
                        "the slow one at 6 (over 6 h).",
                        (
                            Query(
                                'slo:sli_error:ratio_rate1h{slo="api-availability"} / 0.001',
                                "{{slo}}",
                            ),
                            Query(
                                "slo:sli_error:ratio_rate1h"
                                '{slo=~"login-latency|profile-read-latency"} / 0.01',
                                "{{slo}}",
                            ),
                        ),
                        kind="stat",
                        thresholds=(6, 14.4),
                    ),
                    _single(
                        "SLI error ratio (5 min)",
                        (
                            "Share of bad requests per SLO: 5xx for availability, slower than "
                            "the threshold for latency."
                        ),
                        "slo:sli_error:ratio_rate5m",
                        "{{slo}}",
                        unit="percentunit",
                    ),
                    _single(
                        "Throttled logins",
                        (
                            "Logins refused by the per-email or per-address limit "
                            "(alert: LoginThrottlingSpike)."
                        ),
                        f"sum by (limit) (rate(auth_login_throttled_total[{RATE}]))",
                        "{{limit}}",
                        unit="ops",
                    ),
                ),
            ),
            RowSpec(
                "Traffic",
                (
                    _single(
                        "Requests per second",
                        "Per service, all routes.",
                        "sum by (service) (service_route_method:http_requests:rate5m)",
                        "{{service}}",
                        unit="reqps",
                    ),
                    _single(
                        "5xx ratio",
                        "Per service, all routes.",
                        (
                            "sum by (service) "
                            f'(rate(http_requests_total{{status=~"5.."}}[{RATE}])) / '
                            f"sum by (service) (rate(http_requests_total[{RATE}]))"
                        ),
                        "{{service}}",
                        unit="percentunit",
                    ),
                    _single(
                        "Latency p99",
                        "Per service, all routes.",
                        (
                            "histogram_quantile(0.99, sum by (service, le) "
                            f"(rate(http_request_duration_seconds_bucket[{RATE}])))"
                        ),
                        "{{service}}",
                        unit="s",
                    ),
                ),
            ),
            RowSpec(
                "Dependencies",
                (
                    _single(
                        "Failing readiness checks",
                        "Pods whose check failed at the last /ready (alert: DependencyDown).",
                        "count by (service, check) (readiness_check_up == 0)",
                        "{{service}} {{check}}",
                    ),
                    _single(
                        "Gateway circuit breakers",
                        (
                            "1 while the gateway's breaker to an upstream is open "
                            "(alert: GatewayCircuitOpen)."
                        ),
                        "max by (upstream) (gateway_upstream_circuit_open)",
                        "{{upstream}}",
                    ),
                    _single(
                        "Users cache bypassed",
                        (
                            "Cache operations skipped while Redis is failing "
                            "(alert: UsersCacheBypassed)."
                        ),
                        f"sum by (operation) (rate(users_cache_bypassed_total[{RATE}]))",
                        "{{operation}}",
                        unit="ops",
                    ),
                ),
            ),
            RowSpec(
                "Events",
                (
                    _single(
                        "Consumer lag",
                        "Undelivered events per consumer group (alert: EventConsumerLagging).",
                        "max by (stream, group) (events_consumer_lag)",
                        "{{stream}}/{{group}}",
                    ),
                    _single(
                        "Dead-lettered events",
                        "Events that kept failing (alert: EventsDeadLettered).",
                        (f"sum by (stream, group) (increase(events_dead_lettered_total[{RATE}]))"),
                        "{{stream}}/{{group}}",
                    ),
                    _single(
                        "Published",
                        "Events published per stream.",
                        f"sum by (stream) (rate(events_published_total[{RATE}]))",
                        "{{stream}}",
                        unit="ops",
                    ),
                ),
            ),
        ),
    )


def gateway() -> DashboardSpec:
    return _service_dashboard(
        "gateway",
        "The public entry point: traffic per upstream, upstream health, JWKS.",
        RowSpec(
            "Dependencies",
            (
                _single(
                    "Upstream failures",
                    "Proxied requests that got no upstream response, by kind.",
                    (f"sum by (upstream, kind) (rate(gateway_upstream_failures_total[{RATE}]))"),
                    "{{upstream}} {{kind}}",
                    unit="ops",
                ),
                _single(
                    "Circuit breakers",
                    "1 while the breaker to an upstream is open, per pod.",
                    "max by (upstream, pod) (gateway_upstream_circuit_open)",
                    "{{upstream}} {{pod}}",
                ),
                _readiness("gateway"),
                *_jwks("gateway"),
            ),
        ),
        # No events row: the gateway neither publishes nor consumes events.
        events=False,
    )


def auth() -> DashboardSpec:
    return _service_dashboard(
        "auth",
        "Tokens and identities: logins, throttling, MongoDB and Redis.",
        RowSpec(
            "Dependencies and abuse",
            (
                _readiness("auth"),
                _single(
                    "Throttled logins",
                    "Refused by the per-email or per-address limit.",
                    f"sum by (limit) (rate(auth_login_throttled_total[{RATE}]))",
                    "{{limit}}",
                    unit="ops",
                ),
            ),
        ),
    )


def users() -> DashboardSpec:
    return _service_dashboard(
        "users",
        "Profiles: PostgreSQL, the Redis cache, JWKS.",
        RowSpec(
            "Dependencies",
            (
                _readiness("users"),
                PanelSpec(
                    "Cache",
                    "Profile reads from Redis, from PostgreSQL, and cache operations "
                    "that failed or were skipped while Redis was failing.",
                    (
                        Query(f"sum(rate(users_cache_hits_total[{RATE}]))", "hits"),
                        Query(f"sum(rate(users_cache_misses_total[{RATE}]))", "misses"),
                        Query(
                            f"sum by (operation) (rate(users_cache_errors_total[{RATE}]))",
                            "errors {{operation}}",
                        ),
                        Query(
                            f"sum by (operation) (rate(users_cache_bypassed_total[{RATE}]))",
                            "bypassed {{operation}}",
                        ),
                    ),
                    unit="ops",
                ),
                _single(
                    "SQL statements per request (p99)",
                    "A rise means a query pattern changed (an N+1 shows here).",
                    (
                        "histogram_quantile(0.99, sum by (route, le) "
                        f"(rate(users_db_statements_per_request_bucket[{RATE}])))"
                    ),
                    "{{route}}",
                ),
                *_jwks("users"),
            ),
        ),
    )


# Dashboard file name (without .json) -> the dashboard, and the service whose metrics it
# shows (None: every service's).
DASHBOARDS: dict[str, tuple[Callable[[], DashboardSpec], str | None]] = {
    "gatehouse-overview": (overview, None),
    "gatehouse-gateway": (gateway, "gateway"),
    "gatehouse-auth": (auth, "auth"),
    "gatehouse-users": (users, "users"),
}
