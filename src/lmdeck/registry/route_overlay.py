"""Routes applied with ``lmdeck apply``, served live next to the routes of the config file.

Applied routes are kept in ``registry_routes`` and arrive with each registry
snapshot. This step, the last of the pipeline, sends a request for an applied
route to a router built from the config file's routes overlaid with the
applied ones (rebuilt when they change), so an applied route is live without a
restart and its fallbacks may name file routes. Other requests go on to the
gateway's own router. It is declared in phase ``route``, the innermost::

    overlay = AppliedRoutes(live, settings, lambda s: Router.from_settings(s, providers, ctx), Dispatcher)
    StepDeclaration(overlay, "route")   # in RegistryRuntime.steps
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lmdeck.gateway.routing.router import Router
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.snapshot import RegistrySnapshot
from lmdeck.settings import RouteConfig, Settings

log = logging.getLogger(__name__)

RouterFactory = Callable[[Settings], Router]
TerminalFactory = Callable[[Router], Handler]


class RouteTable:
    """The live configuration of a route: the applied one if any, else the config file's."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def config(self, name: str, snapshot: RegistrySnapshot) -> RouteConfig | None:
        applied = snapshot.routes.get(name)
        if applied is not None:
            return applied
        route = self.router.get(name)
        return route.config if route is not None else None

    def names(self, snapshot: RegistrySnapshot) -> list[str]:
        return sorted(set(self.router.names()) | set(snapshot.routes))


class AppliedRoutes:
    """Dispatches requests for applied routes; a pass-through for every other route."""

    name = "applied-routes"

    def __init__(
        self, live: LiveRegistry, settings: Settings, build_router: RouterFactory, build_terminal: TerminalFactory
    ) -> None:
        self.settings = settings
        self.build_router = build_router
        self.build_terminal = build_terminal
        self.routes: dict[str, RouteConfig] = {}
        self._terminal: Handler | None = None
        self._routers: list[Router] = []
        self.rebuild(live.snapshot)
        live.on_change(self.rebuild)

    def rebuild(self, snapshot: RegistrySnapshot) -> None:
        if snapshot.routes == self.routes:
            return
        if not snapshot.routes:
            self.routes, self._terminal = {}, None
            return
        try:
            merged = [r for r in self.settings.routes if r.name not in snapshot.routes]
            merged += list(snapshot.routes.values())
            router = self.build_router(self.settings.model_copy(update={"routes": merged}))
        except Exception:
            log.exception("applied routes could not be built; still serving the previous ones")
            return
        # Replaced routers are closed only at shutdown: their providers may share engines with the live ones.
        self._routers.append(router)
        self.routes, self._terminal = dict(snapshot.routes), self.build_terminal(router)

    @property
    def live_router(self) -> Router | None:
        """The router serving the applied routes now (its targets' breakers, in-flight counts and
        latencies), or None while no route is applied."""
        return self._routers[-1] if self._terminal is not None and self._routers else None

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        terminal = self._terminal
        if terminal is not None and ctx.route_name in self.routes:
            return await terminal(ctx)
        return await call_next(ctx)

    async def aclose(self) -> None:
        routers, self._routers = self._routers, []
        for router in routers:
            await router.aclose()
