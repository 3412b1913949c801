"""The route table: public model names → targets with their live state, strategies and breakers.

router = Router.from_settings(settings, providers, ProviderContext(settings=settings, transport=transport))
route = router.get("gpt-4o")
router.order(route)          # the targets in the order this request should try them
router.breaker_states()      # {"openai:gpt-4o": "open", ...} for metrics
"""

from __future__ import annotations

import random

from lmdeck.gateway.routing.breaker import BreakerState, BreakerStore, CircuitBreakers
from lmdeck.gateway.routing.retry import RetryPolicy
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.gateway.routing.strategy import StrategyRegistry
from lmdeck.gateway.routing.tiers import TieredStrategy
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.base import Preloading
from lmdeck.settings import BreakerSettings, RetrySettings, RouteConfig, Settings, TargetConfig

BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")

DEMO_ROUTE = RouteConfig(
    name="demo",
    description="lmdeck's bundled demo model: a tiny GPT-style model trained on synthetic skills "
    "(arithmetic, string transforms, capitals, JSON extraction). A demo, not a general assistant.",
    targets=[TargetConfig(provider="local", model="demo", timeout=120)],
)
EMBED_ROUTE = RouteConfig(
    name="embed",
    kind="embeddings",
    description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions), served in-process.",
    targets=[TargetConfig(provider="local", model="all-minilm-l6-v2", timeout=60)],
)


class Router:
    """Route names → live routes, plus what the dispatcher needs to try them. Build with :meth:`from_settings`."""

    def __init__(
        self,
        routes: dict[str, RouteState],
        *,
        retry: RetrySettings | None = None,
        breakers: CircuitBreakers | None = None,
        strategies: StrategyRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._routes = routes
        self.retry = RetryPolicy(retry or RetrySettings())
        self.breakers = breakers or CircuitBreakers(BreakerSettings())
        self.strategies = strategies or StrategyRegistry.builtin()
        self.rng = rng or random.Random()
        for route in routes.values():
            if route.strategy is None:
                route.strategy = self.strategies.create(route.config.strategy)
            if isinstance(route.strategy, TieredStrategy):
                route.strategy.prepare(route)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        providers: ProviderRegistry,
        ctx: ProviderContext,
        *,
        breaker_store: BreakerStore | None = None,
        strategies: StrategyRegistry | None = None,
    ) -> Router:
        configs = list(settings.routes)
        if settings.default_routes and settings.local.enabled and "local" in providers:
            names = {r.name for r in configs}
            configs += [r for r in (DEMO_ROUTE, EMBED_ROUTE) if r.name not in names]
        routes = {
            rc.name: RouteState(rc, [TargetState(t, providers.create(t, ctx)) for t in rc.targets]) for rc in configs
        }
        if strategies is None:
            from lmdeck.gateway.routing.learned import LearnedRouters

            strategies = StrategyRegistry.builtin(routers=LearnedRouters(data_dir=settings.data_dir))
        return cls(
            routes,
            retry=settings.retry,
            breakers=CircuitBreakers(settings.breaker, breaker_store),
            strategies=strategies,
        )

    def get(self, name: str) -> RouteState | None:
        return self._routes.get(name)

    def names(self) -> list[str]:
        return list(self._routes)

    def routes(self) -> list[RouteState]:
        return list(self._routes.values())

    def order(self, route: RouteState) -> list[TargetState]:
        """The route's targets in the order one request should try them."""
        assert route.strategy is not None
        return route.strategy.order(route.targets, self.rng)

    def targets(self) -> dict[str, TargetState]:
        return {t.id: t for route in self._routes.values() for t in route.targets}

    def start_loading(self) -> None:
        """Start loading, in the background, every model a target serves in-process."""
        for target in self.targets().values():
            if isinstance(target.provider, Preloading):
                target.provider.start_loading()

    def loading(self) -> list[str]:
        """The models still loading (each named once), for ``/health/ready``."""
        names = (n for t in self.targets().values() if isinstance(t.provider, Preloading) for n in t.provider.loading())
        return sorted(set(names))

    def breaker_states(self) -> dict[str, BreakerState]:
        """Every target's breaker state, by target id (``closed`` unless it has tripped)."""
        states: dict[str, BreakerState] = dict.fromkeys(self.targets(), "closed")
        states.update(self.breakers.states())
        return states

    def breaker_gauge(self) -> dict[tuple[str, ...], float]:
        """``{(target, state): 1.0 for the current state else 0.0}``, the shape a Prometheus gauge reads."""
        return {
            (target_id, state): 1.0 if current == state else 0.0
            for target_id, current in self.breaker_states().items()
            for state in BREAKER_STATES
        }

    async def aclose(self) -> None:
        for route in self._routes.values():
            for target in route.targets:
                await target.provider.aclose()
