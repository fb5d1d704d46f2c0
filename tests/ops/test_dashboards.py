"""The Grafana dashboard, the Prometheus alert rules and docs/observability.md against the metrics
the services really define (their `metrics.py`, instantiated on a fresh registry): every series a
query names exists, every label it filters or groups by is one that series carries, no query
groups by an unbounded id, and every metric is documented."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "stepwise-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DOCS = ROOT / "docs" / "observability.md"

# labels Prometheus adds to every scraped series; the sweeper's own `job` label is renamed
TARGET_LABELS = {"job", "instance"}
UNBOUNDED = {"run_id", "runId", "tenant", "event_id", "workflow_id", "step_path", "key_id"}
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


@dataclass(frozen=True)
class Metric:
    family: str
    kind: str
    labels: frozenset[str]
    module: str


def _metrics_modules() -> list[str]:
    return sorted(
        f"{path.parent.name}.metrics" for path in ROOT.glob("services/*/src/*/metrics.py")
    )


def _collectors(module_name: str) -> list[MetricWrapperBase]:
    """Module-level metrics, and the metrics of each class that takes a `registry`."""
    module = importlib.import_module(module_name)
    found = [v for v in vars(module).values() if isinstance(v, MetricWrapperBase)]
    for cls in vars(module).values():
        if (
            inspect.isclass(cls)
            and cls.__module__ == module_name
            and "registry" in inspect.signature(cls).parameters
        ):
            factory: Any = cls  # a metrics holder built with its registry
            instance = factory(registry=CollectorRegistry())
            found += [v for v in vars(instance).values() if isinstance(v, MetricWrapperBase)]
    return found


@pytest.fixture(scope="module")
def catalog() -> dict[str, Metric]:
    """Every exposed series name → its metric."""
    series: dict[str, Metric] = {}
    for module_name in _metrics_modules():
        for collector in _collectors(module_name):
            kind = str(collector._type)  # private but stable: the metric's type
            labels = frozenset(collector._labelnames)  # the declared label names
            family = collector._name
            metric = Metric(family=family, kind=kind, labels=labels, module=module_name)
            for suffix in SUFFIXES[kind]:
                series[family + suffix] = metric
    assert series, "no service metrics found"
    return series


SELECTOR = re.compile(r"\b(stepwise_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _allowed_labels(metric: Metric, series: str) -> set[str]:
    allowed = set(metric.labels) | TARGET_LABELS
    if "job" in metric.labels:
        allowed.add("exported_job")
    if series.endswith("_bucket"):
        allowed.add("le")
    return allowed


def check_expr(expr: str, catalog: dict[str, Metric]) -> list[str]:
    problems: list[str] = []
    used: set[str] = set()
    for name, selector in SELECTOR.findall(expr):
        metric = catalog.get(name)
        if metric is None:
            problems.append(f"unknown series {name}")
            continue
        allowed = _allowed_labels(metric, name)
        used |= allowed
        for label in MATCHER.findall(selector or ""):
            if label not in allowed:
                problems.append(f"{name} has no label {label!r} (has {sorted(metric.labels)})")
    if "up{" in expr or "up)" in expr:
        used |= TARGET_LABELS
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label in UNBOUNDED:
                problems.append(f"groups by the unbounded label {label!r}")
            elif label not in used:
                problems.append(f"groups by {label!r}, which no series in it carries")
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        problems.append("unbalanced brackets")
    return problems


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_dashboard_queries_name_real_series_and_labels(catalog: dict[str, Metric]) -> None:
    problems = {
        title: found for title, expr in _dashboard_exprs() if (found := check_expr(expr, catalog))
    }
    assert problems == {}


def test_dashboard_layout() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for dx in range(pos["w"]):
            for dy in range(pos["h"]):
                cell = (pos["x"] + dx, pos["y"] + dy)
                assert cell not in cells, f"{panel['title']} overlaps another panel"
                cells.add(cell)
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "$datasource"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource"}
    # every service with metrics has at least one panel
    exprs = " ".join(expr for _, expr in _dashboard_exprs())
    for prefix in ("stepwise_api_", "stepwise_router_", "stepwise_sweeper_"):
        assert prefix in exprs


def test_alert_rules_are_well_formed(catalog: dict[str, Metric]) -> None:
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    problems = {}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        if found := check_expr(rule["expr"], catalog):
            problems[rule["alert"]] = found
        # templates only use labels the expression keeps
        for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
            assert label in rule["expr"] or label in TARGET_LABELS, (rule["alert"], label)
    assert problems == {}
    covered = " ".join(r["expr"] for r in rules)
    for needed in (
        'up{job="stepwise-worker"}',
        "stepwise_router_dlq_total",
        'stepwise_sweeper_reconciliations_total{outcome="failed"}',
        'status=~"5.."',
    ):
        assert needed in covered


def test_the_checker_catches_mistakes(catalog: dict[str, Metric]) -> None:
    assert check_expr("rate(stepwise_router_nope_total[5m])", catalog) == [
        "unknown series stepwise_router_nope_total"
    ]
    assert check_expr('sum(rate(stepwise_router_dlq_total{tenant="x"}[5m]))', catalog)
    assert check_expr("sum by (run_id) (rate(stepwise_router_dlq_total[5m]))", catalog)
    assert check_expr("sum by (route) (rate(stepwise_router_dlq_total[5m]))", catalog)
    assert check_expr("sum by (reason) (rate(stepwise_router_dlq_total[5m])", catalog)
    assert not check_expr("sum by (reason) (rate(stepwise_router_dlq_total[5m]))", catalog)


def test_every_metric_is_documented(catalog: dict[str, Metric]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = []
    for metric in {m.family: m for m in catalog.values()}.values():
        shown = metric.family + ("_total" if metric.kind == "counter" else "")
        row = next((line for line in text.splitlines() if f"`{shown}`" in line), None)
        if row is None:
            missing.append(f"{shown} ({metric.module})")
            continue
        for label in metric.labels:
            assert f"`{label}`" in row, f"{shown}: label {label} not in its docs row"
    assert missing == [], "document these metrics in docs/observability.md (Metrics)"
