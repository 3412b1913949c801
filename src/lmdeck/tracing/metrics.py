"""Prometheus metrics, fed by every finished trace.

    metrics = GatewayMetrics()
    metrics.gauge_from("lmdeck_spool_depth", "records not yet in the store", lambda: {(): spool.depth})
    metrics.observe(record)          # once per request, from the record step
    body = metrics.exposition()      # what /metrics serves

Other layers (evaluation, policy) register their own metric objects on
``metrics.registry`` so that one scrape shows everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lmdeck.money import dollars
from lmdeck.protocol.traces import TraceRecord

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

GaugeSource = Callable[[], Mapping[tuple[str, ...], float]]


class _CallbackGauges(Collector):
    """Gauges read at scrape time from callbacks (spool depth, breaker states)."""

    def __init__(self) -> None:
        self._gauges: dict[str, tuple[str, tuple[str, ...], GaugeSource]] = {}

    def add(self, name: str, doc: str, labels: tuple[str, ...], source: GaugeSource) -> None:
        self._gauges[name] = (doc, labels, source)

    def collect(self) -> Iterator[Metric]:
        for name, (doc, labels, source) in self._gauges.items():
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            try:
                values = source()
            except Exception:
                log.exception("gauge %s failed", name)
                continue
            for label_values, value in values.items():
                family.add_metric(list(label_values), value)
            yield family


class GatewayMetrics:
    """The gateway's Prometheus series, on a registry of its own (no process-global state)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lmdeck_requests", "requests handled", ["route", "target", "kind", "status"], registry=r
        )
        self.errors = Counter("lmdeck_errors", "failed requests", ["route", "target", "error_type"], registry=r)
        self.latency = Histogram(
            "lmdeck_request_latency_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "lmdeck_time_to_first_token_seconds",
            "time to first streamed token",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "lmdeck_gateway_overhead_seconds",
            "time spent in the gateway outside the upstream call",
            ["route"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("lmdeck_tokens", "tokens processed", ["route", "direction"], registry=r)
        self.cost = Counter("lmdeck_cost_usd", "cost in US dollars", ["route", "team"], registry=r)
        self.retries = Counter("lmdeck_retries", "upstream retries", ["route"], registry=r)
        self.cache_hits = Counter(
            "lmdeck_cache_hits", "responses served from cache", ["route", "team", "cache"], registry=r
        )
        self.cache_misses = Counter(
            "lmdeck_cache_misses", "cacheable requests the cache could not answer", ["route", "team"], registry=r
        )
        self.cache_bypasses = Counter(
            "lmdeck_cache_bypasses",
            "requests that skipped the cache (sampled or bypass)",
            ["route", "team"],
            registry=r,
        )
        self.cache_saved_tokens = Counter(
            "lmdeck_cache_saved_tokens",
            "tokens cache hits did not send upstream",
            ["route", "team", "cache"],
            registry=r,
        )
        self.cache_saved = Counter(
            "lmdeck_cache_saved_usd",
            "US dollars cache hits saved (what the upstream calls would have cost)",
            ["route", "team", "cache"],
            registry=r,
        )
        self.routed = Counter(
            "lmdeck_routed_requests",
            "requests served by a tiered strategy (cascade, learned), by the tier that answered (0: cheapest)",
            ["route", "strategy", "tier"],
            registry=r,
        )
        self.escalations = Counter(
            "lmdeck_escalations",
            "requests a tiered strategy answered from a tier above the cheapest: escalation rate = "
            "rate(lmdeck_escalations_total) / rate(lmdeck_routed_requests_total)",
            ["route", "strategy"],
            registry=r,
        )
        self._routed_totals: dict[str, list[int]] = {}
        self._gauges = _CallbackGauges()
        r.register(self._gauges)
        self.gauge_from(
            "lmdeck_escalation_rate",
            "share of a tiered route's answered requests not answered by its cheapest target, since start",
            lambda: {(route,): esc / total for route, (total, esc) in self._routed_totals.items() if total},
            ("route",),
        )

    def gauge_from(self, name: str, doc: str, source: GaugeSource, labels: tuple[str, ...] = ()) -> None:
        self._gauges.add(name, doc, labels, source)

    def observe(self, record: TraceRecord) -> None:
        route = record.route or "unknown"
        target = record.target or "none"
        self.requests.labels(route, target, record.kind, str(record.status_code)).inc()
        if record.status_code >= 400:
            self.errors.labels(route, target, record.error_type or str(record.status_code)).inc()
        self.latency.labels(route).observe(record.latency_ms / 1000.0)
        if record.ttft_ms is not None:
            self.ttft.labels(route).observe(record.ttft_ms / 1000.0)
        overhead = record.gateway_overhead_ms
        if overhead is not None:
            self.overhead.labels(route).observe(overhead / 1000.0)
        if record.input_tokens:
            self.tokens.labels(route, "input").inc(record.input_tokens)
        if record.output_tokens:
            self.tokens.labels(route, "output").inc(record.output_tokens)
        if record.cost_micros:
            self.cost.labels(route, record.team_id or "none").inc(record.cost_usd)
        if record.retries:
            self.retries.labels(route).inc(record.retries)
        self._observe_cache(record, route)
        self._observe_routing(route, record.metadata.get("routing"))

    def _observe_cache(self, record: TraceRecord, route: str) -> None:
        team = record.team_id or "none"
        if record.cache_hit:
            cache = record.cache or "unknown"
            self.cache_hits.labels(route, team, cache).inc()
            if record.saved_tokens:
                self.cache_saved_tokens.labels(route, team, cache).inc(record.saved_tokens)
            if record.saved_micros:
                self.cache_saved.labels(route, team, cache).inc(dollars(record.saved_micros))
        elif record.cache_status == "miss":
            self.cache_misses.labels(route, team).inc()
        elif record.cache_status == "bypass":
            self.cache_bypasses.labels(route, team).inc()

    def _observe_routing(self, route: str, decision: object) -> None:
        """Count a tiered strategy's decision (trace ``metadata["routing"]``) when a tier answered."""
        if not isinstance(decision, dict) or not isinstance(decision.get("tier"), int):
            return
        tier, strategy = decision["tier"], str(decision.get("strategy"))
        self.routed.labels(route, strategy, str(tier)).inc()
        totals = self._routed_totals.setdefault(route, [0, 0])
        totals[0] += 1
        if tier > 0:
            self.escalations.labels(route, strategy).inc()
            totals[1] += 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
