"""The typed accessors routes reach the gateway's services through."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.app.services import analytics_of, evaluation_of, gateway_of, policy_of, runtime_of, trace_store_of
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.policy.services import PolicyServices
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import Settings
from lmdeck.tracing.memory import MemoryTraceSink


def _request(app: FastAPI) -> Request:
    return Request({"type": "http", "app": app, "method": "GET", "path": "/", "headers": []})


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    settings = Settings(data_dir=tmp_path)
    return build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)


def test_each_accessor_returns_the_gateways_own_service(gateway: Gateway) -> None:
    request = _request(create_app(gateway=gateway))
    assert gateway_of(request) is gateway
    assert isinstance(runtime_of(request), RegistryRuntime) and runtime_of(request) is gateway.registry
    assert isinstance(policy_of(request), PolicyServices) and policy_of(request) is gateway.policy
    assert isinstance(evaluation_of(request), EvaluationRuntime) and evaluation_of(request) is gateway.evaluation
    assert trace_store_of(request) is gateway.trace_store
    assert analytics_of(request) is gateway.analytics and gateway.analytics in gateway.services


def test_an_app_without_a_gateway_is_told_how_to_build_one() -> None:
    with pytest.raises(RuntimeError, match="create_app"):
        gateway_of(_request(FastAPI()))


def test_the_gateway_is_wired_by_fields_not_string_keys(gateway: Gateway) -> None:
    assert not hasattr(gateway, "extras")
    assert gateway.evaluation.registry is gateway.registry


def test_applied_routes_are_served_next_to_the_config_files(gateway: Gateway) -> None:
    config_routes = {route.name for route in gateway.route_configs()}
    assert gateway.registry.overlay is not None
    applied = gateway.route_configs()[0].model_copy(update={"name": "applied-only"})
    gateway.registry.overlay.routes = {"applied-only": applied}
    assert {route.name for route in gateway.route_configs()} == config_routes | {"applied-only"}


def test_the_spool_depth_gauge_comes_with_a_queued_sink(tmp_path: Path) -> None:
    durable = build_gateway(Settings(data_dir=tmp_path / "durable"), announce_admin_key=False)
    in_memory = build_gateway(Settings(data_dir=tmp_path / "memory"), sink=MemoryTraceSink(), announce_admin_key=False)
    try:
        assert b"lmdeck_spool_depth 0.0" in durable.metrics.exposition()
        assert b"lmdeck_spool_depth" not in in_memory.metrics.exposition()
    finally:
        for gateway in (durable, in_memory):
            gateway.db.dispose()
