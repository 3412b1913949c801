"""Prometheus metrics, fed by every finished trace.

    metrics = GatewayMetrics()
    metrics.gauge_from("lmdeck_spool_depth", "records not yet in the store", lambda: {(): spool.depth})
    metrics.observe(record)          # once per request, from the record step
    metrics.refused("invalid_api_key", 401)   # a request refused before routing (no record step ran)
    body = metrics.exposition()      # what /metrics serves

Other layers (evaluation, policy) register their own metric objects on
``metrics.registry`` so that one scrape shows everything.

No label takes a value a client chose: ``route`` is a configured route name or ``unknown``
(``known_route`` decides), ``target`` is a configured target id with any credentials or
query string taken out of its URL (:func:`label_target`), and the refusal ``reason`` is one
of lmdeck's own error codes. The ``_created`` series are off (:func:`new_registry`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lmdeck.money import dollars
from lmdeck.protocol.traces import TraceRecord

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

GaugeSource = Callable[[], Mapping[tuple[str, ...], float]]

#: The ``route`` label of a request whose model names no configured route.
UNKNOWN_ROUTE = "unknown"
_LABEL_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def new_registry() -> CollectorRegistry:
    """A registry of lmdeck's own, with prometheus_client's ``_created`` series turned off.

    Those series double every counter and histogram and carry nothing a query uses; the
    switch is prometheus_client's process-wide one (what ``PROMETHEUS_DISABLE_CREATED_SERIES``
    sets), so every registry in the process exports without them.
    """
    disable_created_metrics()
    return CollectorRegistry()


def label_url(url: str) -> str:
    """``url`` fit for a label: no user name or password, no query string, no fragment.

    >>> label_url("https://user:sk-secret@api.example.com/v1?api-key=sk-x#f")
    'https://api.example.com/v1'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "invalid-url"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def label_target(target_id: str) -> str:
    """A target id (``provider:model`` or ``provider:model@base_url``) with its URL made fit for a label.

    >>> label_target("openai:gpt-4o@https://key:secret@proxy.example.com/v1?token=t")
    'openai:gpt-4o@https://proxy.example.com/v1'
    """
    name, at, base = target_id.partition("@")
    return f"{name}@{label_url(base)}" if at else target_id


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


class BoundedLabel:
    """A label's values capped at ``limit`` distinct ones; later newcomers are counted as ``other``.

    For values lmdeck passes on from elsewhere (an upstream's error code) whose set it does not
    fix, so that no stream of new values grows the series without bound.

    >>> codes = BoundedLabel(limit=1)
    >>> codes("timeout"), codes("timeout"), codes("weird_code_42")
    ('timeout', 'timeout', 'other')
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit or not _LABEL_TOKEN.fullmatch(value):
            return "other"
        self._seen.add(value)
        return value


class GatewayMetrics:
    """The gateway's Prometheus series, on a registry of its own (no process-global state).

    ``known_route(name)`` says whether ``name`` is a configured route; any other route name
    (a model the client made up) is counted as ``unknown``.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, known_route: Callable[[str], bool] | None = None
    ) -> None:
        self.registry = registry or new_registry()
        self.known_route = known_route or (lambda name: True)
        self._error_types = BoundedLabel()
        self._reasons = BoundedLabel()
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
        self.refusals = Counter(
            "lmdeck_requests_refused",
            "requests to /v1/ refused before routing (bad key, forbidden, bad or oversized body, rate limit), "
            "by lmdeck's error code and the HTTP status",
            ["reason", "status"],
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

    def route_label(self, route: str | None) -> str:
        """``route`` when it is a configured route's name, else ``unknown``."""
        return route if route and self.known_route(route) else UNKNOWN_ROUTE

    def refused(self, reason: str, status: int) -> None:
        """Count a request refused before routing; ``reason`` is one of lmdeck's error codes."""
        self.refusals.labels(self._reasons(reason), str(status)).inc()

    def observe(self, record: TraceRecord) -> None:
        route = self.route_label(record.route)
        target = label_target(record.target) if record.target else "none"
        self.requests.labels(route, target, record.kind, str(record.status_code)).inc()
        if record.status_code >= 400:
            self.errors.labels(route, target, self._error_types(record.error_type or str(record.status_code))).inc()
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
