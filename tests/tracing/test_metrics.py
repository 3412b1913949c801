from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.metrics import GatewayMetrics, label_target, label_url


def test_observed_trace_shows_in_exposition() -> None:
    metrics = GatewayMetrics()
    metrics.observe(
        TraceRecord(
            route="demo", target="local:demo", input_tokens=5, output_tokens=7, latency_ms=12.0, upstream_ms=10.0
        )
    )
    metrics.observe(TraceRecord(route="demo", target="local:demo", status_code=502, error_type="upstream_error"))
    text = metrics.exposition().decode()
    assert 'lmdeck_requests_total{kind="chat",route="demo",status="200",target="local:demo"} 1.0' in text
    assert 'lmdeck_errors_total{error_type="upstream_error",route="demo",target="local:demo"} 1.0' in text
    assert 'lmdeck_tokens_total{direction="output",route="demo"} 7.0' in text
    assert "lmdeck_gateway_overhead_seconds_count" in text


def test_callback_gauges_are_read_at_scrape_time() -> None:
    metrics = GatewayMetrics()
    depth = {"n": 3}
    metrics.gauge_from("lmdeck_spool_depth", "records not yet stored", lambda: {(): depth["n"]})
    assert "lmdeck_spool_depth 3.0" in metrics.exposition().decode()
    depth["n"] = 0
    assert "lmdeck_spool_depth 0.0" in metrics.exposition().decode()


def test_two_instances_do_not_share_state() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.observe(TraceRecord(route="x"))
    assert 'route="x"' not in b.exposition().decode()


def test_tiered_routing_counts_tiers_and_the_escalation_rate() -> None:
    metrics = GatewayMetrics()
    for tier in (0, 0, 0, 1):
        decision = {"strategy": "cascade", "tier": tier, "answered_by": "x"}
        metrics.observe(TraceRecord(route="smart", metadata={"routing": decision}))
    metrics.observe(TraceRecord(route="smart", metadata={"routing": {"strategy": "cascade", "tier": None}}))
    text = metrics.exposition().decode()
    assert 'lmdeck_routed_requests_total{route="smart",strategy="cascade",tier="0"} 3.0' in text
    assert 'lmdeck_escalations_total{route="smart",strategy="cascade"} 1.0' in text
    assert 'lmdeck_escalation_rate{route="smart"} 0.25' in text


def test_cache_hits_misses_bypasses_and_savings_are_counted_per_route_and_team() -> None:
    metrics = GatewayMetrics()
    hit = TraceRecord(route="r", team_id="t1", cache_hit=True, cache_status="hit", cache="exact")
    hit.saved_tokens, hit.saved_micros = 30, 250_000
    metrics.observe(hit)
    metrics.observe(TraceRecord(route="r", team_id="t1", cache_status="miss"))
    metrics.observe(TraceRecord(route="r", cache_status="bypass"))
    metrics.observe(TraceRecord(route="r"))  # no cache on the route: counted nowhere
    text = metrics.exposition().decode()
    assert 'lmdeck_cache_hits_total{cache="exact",route="r",team="t1"} 1.0' in text
    assert 'lmdeck_cache_misses_total{route="r",team="t1"} 1.0' in text
    assert 'lmdeck_cache_bypasses_total{route="r",team="none"} 1.0' in text
    assert 'lmdeck_cache_saved_tokens_total{cache="exact",route="r",team="t1"} 30.0' in text
    assert 'lmdeck_cache_saved_usd_total{cache="exact",route="r",team="t1"} 0.25' in text


def test_a_route_no_config_names_is_counted_as_unknown() -> None:
    metrics = GatewayMetrics(known_route=lambda name: name == "chat")
    metrics.observe(TraceRecord(route="chat", status_code=200))
    metrics.observe(TraceRecord(route="made-up-by-a-client", status_code=200))
    text = metrics.exposition().decode()
    assert 'route="chat"' in text
    assert 'route="unknown"' in text
    assert "made-up-by-a-client" not in text


def test_target_labels_carry_no_credentials_or_query() -> None:
    assert label_target("openai:m@https://u:pw@h.example:8443/v1?key=sk#x") == "openai:m@https://h.example:8443/v1"
    assert label_target("local:demo") == "local:demo"
    assert label_url("http://[::1]:9/v1?k=1") == "http://[::1]:9/v1"
    metrics = GatewayMetrics()
    metrics.observe(TraceRecord(route="r", target="openai:m@https://u:pw@h.example/v1?api-key=sk", status_code=500))
    text = metrics.exposition().decode()
    assert "u:pw" not in text and "api-key" not in text
    assert "openai:m@https://h.example/v1" in text


def test_error_types_from_elsewhere_are_capped() -> None:
    metrics = GatewayMetrics()
    for i in range(200):
        metrics.observe(TraceRecord(route="r", status_code=400, error_type=f"upstream_code_{i}"))
    metrics.observe(TraceRecord(route="r", status_code=400, error_type="has spaces {and} braces"))
    text = metrics.exposition().decode()
    assert len([line for line in text.splitlines() if line.startswith("lmdeck_errors_total{")]) <= 65
    assert 'error_type="other"' in text


def test_no_created_series() -> None:
    metrics = GatewayMetrics()
    metrics.observe(TraceRecord(route="r", status_code=200, input_tokens=3))
    metrics.refused("invalid_api_key", 401)
    text = metrics.exposition().decode()
    assert "_created" not in text
    assert 'lmdeck_requests_refused_total{reason="invalid_api_key",status="401"} 1.0' in text
