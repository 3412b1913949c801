"""lmdeck's own alert rules as Prometheus alerting rules, and the shipped Grafana dashboard.

    text = prometheus_rules(store.rules())     # YAML for Prometheus' rule_files, over lmdeck's /metrics
    dashboard = grafana_dashboard()            # the dashboard JSON (a dict), for Grafana's import

Threshold and burn-rate rules translate to PromQL over the series lmdeck exports on ``/metrics``
(``lmdeck_requests_total``, ``lmdeck_request_latency_seconds``, ``lmdeck_cost_usd_total``...). What
has no Prometheus counterpart is left out and listed under ``# skipped`` at the top, with the reason:
anomaly and budget-forecast rules (lmdeck evaluates them itself), metrics lmdeck does not export
(guardrail actions), and dimensions the exported series do not carry as labels (only ``route``, and
``target`` on request counts).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml

from lmdeck.protocol.alerts import AlertRuleSpec

_REQUESTS = "lmdeck_requests_total"
_ERROR_STATUS = 'status=~"[45].."'
#: The labels each exported series carries, for ``where`` and ``by``.
_LABELS = {
    "requests": {"route", "target"},
    "latency": {"route"},
    "ttft": {"route"},
    "tokens": {"route"},
    "cost": {"route"},
    "cache": {"route"},
}


class Unexportable(ValueError):
    """A rule has no PromQL counterpart; the message says why."""


def _selector(rule: AlertRuleSpec, family: str, extra: str = "") -> str:
    allowed = _LABELS[family]
    parts = []
    for name, value in rule.signal.where.items():
        if name not in allowed:
            raise Unexportable(f"where.{name}: the exported series carry only {', '.join(sorted(allowed))}")
        parts.append(f'{name}="{value}"')
    for name in rule.signal.by:
        if name not in allowed:
            raise Unexportable(f"by {name}: the exported series carry only {', '.join(sorted(allowed))}")
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def _sum(rule: AlertRuleSpec, inner: str) -> str:
    by = f" by ({', '.join(rule.signal.by)})" if rule.signal.by else ""
    return f"sum{by}({inner})"


def _window(seconds: int) -> str:
    return f"{seconds}s"


def metric_expr(rule: AlertRuleSpec, window_s: int | None = None) -> str:
    """The PromQL of the rule's metric over ``window_s`` (default: the rule's window), in lmdeck's units."""
    metric, w = rule.signal.metric, _window(window_s or rule.signal.window_s)
    if metric in ("request_rate", "requests", "errors", "error_rate"):
        total = _sum(rule, f"rate({_REQUESTS}{_selector(rule, 'requests')}[{w}])")
        errors = _sum(rule, f"rate({_REQUESTS}{_selector(rule, 'requests', _ERROR_STATUS)}[{w}])")
        if metric == "request_rate":
            return total
        if metric == "requests":
            return _sum(rule, f"increase({_REQUESTS}{_selector(rule, 'requests')}[{w}])")
        if metric == "errors":
            return _sum(rule, f"increase({_REQUESTS}{_selector(rule, 'requests', _ERROR_STATUS)}[{w}])")
        return f"({errors}) / ({total})"
    for kind, series in (("latency", "lmdeck_request_latency_seconds"), ("ttft", "lmdeck_time_to_first_token_seconds")):
        if metric.startswith(f"{kind}_p"):
            q = int(metric.rsplit("p", 1)[1]) / 100
            by = ", ".join(["le", *rule.signal.by])
            inner = f"sum by ({by})(rate({series}_bucket{_selector(rule, kind)}[{w}]))"
            return f"histogram_quantile({q:g}, {inner}) * 1000"
    if metric == "mean_latency_ms":
        sel = _selector(rule, "latency")
        return (
            f"{_sum(rule, f'rate(lmdeck_request_latency_seconds_sum{sel}[{w}])')} / "
            f"{_sum(rule, f'rate(lmdeck_request_latency_seconds_count{sel}[{w}])')} * 1000"
        )
    if metric in ("input_tokens", "output_tokens"):
        direction = f'direction="{metric.split("_")[0]}"'
        return _sum(rule, f"increase(lmdeck_tokens_total{_selector(rule, 'tokens', direction)}[{w}])")

    def requests() -> str:
        return _sum(rule, f"rate({_REQUESTS}{_selector(rule, 'requests')}[{w}])")

    if metric == "mean_output_tokens":
        output = 'direction="output"'
        out = _sum(rule, f"rate(lmdeck_tokens_total{_selector(rule, 'tokens', output)}[{w}])")
        return f"({out}) / ({requests()})"
    if metric in ("cost_per_hour", "cost_micros"):
        rate = _sum(rule, f"rate(lmdeck_cost_usd_total{_selector(rule, 'cost')}[{w}])")
        if metric == "cost_per_hour":
            return f"{rate} * 3600 * 1e6"
        return _sum(rule, f"increase(lmdeck_cost_usd_total{_selector(rule, 'cost')}[{w}])") + " * 1e6"
    if metric == "cache_hit_rate":
        hits = _sum(rule, f"rate(lmdeck_cache_hits_total{_selector(rule, 'cache')}[{w}])")
        return f"({hits}) / ({requests()})"
    raise Unexportable(f"metric {metric!r} is not exported on /metrics")


def prometheus_rule(rule: AlertRuleSpec) -> dict[str, Any]:
    """One Prometheus alerting rule for ``rule``; :class:`Unexportable` when it has none."""
    if rule.kind == "threshold":
        expr = f"{metric_expr(rule)} {rule.op} {rule.threshold:g}"
    elif rule.kind == "burn_rate":
        spec = rule.burn_rate
        assert spec is not None
        limit = spec.factor * (1 - spec.objective)
        long_expr = metric_expr(rule, spec.long_window_s)
        short_expr = metric_expr(rule, spec.short_window_s)
        expr = f"({long_expr}) > {limit:g} and ({short_expr}) > {limit:g}"
    else:
        raise Unexportable(f"{rule.kind} rules are evaluated by lmdeck itself")
    out: dict[str, Any] = {
        "alert": rule.name,
        "expr": expr,
        "labels": {**rule.labels, "severity": rule.severity, "source": "lmdeck"},
        "annotations": {"summary": rule.description or f"{rule.signal.metric} {rule.op} {rule.threshold}"},
    }
    if rule.for_s:
        out["for"] = f"{rule.for_s}s"
    return out


def prometheus_rules(rules: list[AlertRuleSpec], group: str = "lmdeck") -> str:
    """A Prometheus rule file (YAML) of the enabled rules that translate; the others listed as comments."""
    exported, skipped = [], []
    for rule in rules:
        if not rule.enabled:
            continue
        try:
            exported.append(prometheus_rule(rule))
        except Unexportable as exc:
            skipped.append(f"# skipped {rule.name}: {exc}")
    header = ["# Prometheus alerting rules generated by `lmdeck alerts export --prometheus`", *skipped]
    body = yaml.safe_dump({"groups": [{"name": group, "rules": exported}]}, sort_keys=False, width=10_000)
    return "\n".join(header) + "\n" + body


def grafana_dashboard() -> dict[str, Any]:
    """The shipped Grafana dashboard (``lmdeck/monitoring/grafana/lmdeck.json``) as a dict."""
    text = resources.files("lmdeck.monitoring").joinpath("grafana/lmdeck.json").read_text(encoding="utf-8")
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard
