"""Router.from_settings: routes, strategies, breaker states."""

from __future__ import annotations

from lmdeck.gateway.routing.latency import LatencyEWMA
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.weighted import WeightedRandom
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.scripted_provider import ScriptedProvider


def scripted_registry() -> ProviderRegistry:
    registry = ProviderRegistry()
    registry.add("scripted", lambda target, ctx: ScriptedProvider(target.model))
    return registry


def build(settings: dict[str, object]) -> Router:
    config = Settings.model_validate({"default_routes": False, **settings})
    return Router.from_settings(
        config, scripted_registry(), ProviderContext(settings=config, transport=AiohttpTransport())
    )


async def test_routes_get_their_strategy_and_settings() -> None:
    router = build(
        {
            "routes": [
                {
                    "name": "a",
                    "targets": [{"provider": "scripted", "model": "m1"}, {"provider": "scripted", "model": "m2"}],
                },
                {"name": "b", "strategy": "latency", "targets": [{"provider": "scripted", "model": "m3"}]},
            ],
            "retry": {"backoff_base": 0.5},
            "breaker": {"failure_threshold": 3},
        }
    )
    a, b = router.get("a"), router.get("b")
    assert a is not None and b is not None and router.get("c") is None
    assert isinstance(a.strategy, WeightedRandom) and isinstance(b.strategy, LatencyEWMA)
    assert {t.id for t in router.order(a)} == {"scripted:m1", "scripted:m2"}
    assert router.retry.settings.backoff_base == 0.5 and router.breakers.settings.failure_threshold == 3
    assert router.names() == ["a", "b"]
    assert router.breaker_states() == {"scripted:m1": "closed", "scripted:m2": "closed", "scripted:m3": "closed"}
    await router.aclose()


async def test_breaker_states_report_tripped_targets() -> None:
    router = build(
        {
            "routes": [{"name": "a", "targets": [{"provider": "scripted", "model": "m1"}]}],
            "breaker": {"failure_threshold": 1},
        }
    )
    permit = await router.breakers.acquire("scripted:m1")
    assert permit is not None
    await router.breakers.failure(permit)
    assert router.breaker_states() == {"scripted:m1": "open"}
    assert router.breaker_gauge() == {
        ("scripted:m1", "closed"): 0.0,
        ("scripted:m1", "open"): 1.0,
        ("scripted:m1", "half_open"): 0.0,
    }


def test_default_routes_only_when_the_local_provider_exists() -> None:
    settings = Settings.model_validate({"routes": []})
    without_local = Router.from_settings(settings, scripted_registry(), ProviderContext(settings, AiohttpTransport()))
    assert without_local.names() == []
    registry = scripted_registry()
    registry.add("local", lambda target, ctx: ScriptedProvider(target.model))
    with_local = Router.from_settings(settings, registry, ProviderContext(settings, AiohttpTransport()))
    assert with_local.names() == ["demo", "embed"]


def test_target_ids_name_the_base_url() -> None:
    assert TargetConfig(model="m", base_url="http://h/v1").id == "openai:m@http://h/v1"
