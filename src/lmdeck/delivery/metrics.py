"""Prometheus series of releases, per release and variant, on the gateway's registry.

``lmdeck_release_requests_total{release,variant,status_class}``, ``lmdeck_release_latency_seconds{release,variant}``
(a histogram), ``lmdeck_release_cost_usd_total{release,variant}``, ``lmdeck_release_share_percent{release}``
(the candidate's share now) and ``lmdeck_release_decisions_total{release,decision}`` (each analysis).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lmdeck.delivery.store import ReleaseExposure

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ReleaseMetrics:
    """The release series (module docs).

    >>> metrics = ReleaseMetrics(CollectorRegistry())
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lmdeck_release_requests",
            "requests served under a release, by variant and status class",
            ["release", "variant", "status_class"],
            registry=registry,
        )
        self.latency = Histogram(
            "lmdeck_release_latency_seconds",
            "latency of requests served under a release, by variant (seconds)",
            ["release", "variant"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "lmdeck_release_cost_usd",
            "cost of requests served under a release (USD)",
            ["release", "variant"],
            registry=registry,
        )
        self.share = Gauge(
            "lmdeck_release_share_percent",
            "the candidate's share of the covered traffic now",
            ["release"],
            registry=registry,
        )
        self.decisions = Counter(
            "lmdeck_release_decisions", "analysis decisions per release", ["release", "decision"], registry=registry
        )

    def observe(self, exposure: ReleaseExposure) -> None:
        status_class = f"{exposure.status_code // 100}xx"
        self.requests.labels(exposure.release, exposure.variant, status_class).inc()
        self.latency.labels(exposure.release, exposure.variant).observe(exposure.latency_ms / 1000.0)
        if exposure.cost:
            self.cost.labels(exposure.release, exposure.variant).inc(exposure.cost)
