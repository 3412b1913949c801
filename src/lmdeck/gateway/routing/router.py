"""The route table: public model names → targets with their live state."""

from __future__ import annotations

from dataclasses import dataclass, field

from lmdeck.providers import Provider, ProviderContext, ProviderRegistry
from lmdeck.settings import RouteConfig, Settings, TargetConfig

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


@dataclass
class TargetState:
    """One target of a route, with the provider instance that serves it."""

    config: TargetConfig
    provider: Provider
    in_flight: int = 0
    latency_ewma_ms: float | None = None

    @property
    def id(self) -> str:
        return self.config.id


@dataclass
class RouteState:
    config: RouteConfig
    targets: list[TargetState] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name


class Router:
    """Route names → live routes. Build with :meth:`from_settings`."""

    def __init__(self, routes: dict[str, RouteState]) -> None:
        self._routes = routes

    @classmethod
    def from_settings(cls, settings: Settings, providers: ProviderRegistry, ctx: ProviderContext) -> Router:
        configs = list(settings.routes)
        if settings.default_routes and settings.local.enabled and "local" in providers:
            names = {r.name for r in configs}
            configs += [r for r in (DEMO_ROUTE, EMBED_ROUTE) if r.name not in names]
        routes = {
            rc.name: RouteState(rc, [TargetState(t, providers.create(t, ctx)) for t in rc.targets]) for rc in configs
        }
        return cls(routes)

    def get(self, name: str) -> RouteState | None:
        return self._routes.get(name)

    def names(self) -> list[str]:
        return list(self._routes)

    def routes(self) -> list[RouteState]:
        return list(self._routes.values())

    async def aclose(self) -> None:
        for route in self._routes.values():
            for target in route.targets:
                await target.provider.aclose()
