"""Serving one request with targets of its own instead of its route's: what an in-process caller (a
fine-tuning job evaluating an adapter before it is registered) uses to reach an unregistered model.

Only code inside the gateway can put a route in :data:`ROUTE_OVERRIDE`; no request field or header
reaches it. The request keeps its route name (keys' model allow-lists, budgets and traces see the
route the caller named), and the dispatcher sends it to the override's targets::

    route = single_target_route("demo", TargetConfig(provider="local", model="demo",
                                                     options={"adapter": "/data/finetune/jobs/ftjob-1/adapter"}),
                                providers, provider_ctx)
    ctx.slots.put(ROUTE_OVERRIDE, route)
    ...
    await close_route(route)          # the caller owns the providers it built
"""

from __future__ import annotations

from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.gateway.routing.weighted import WeightedRandom
from lmdeck.pipeline.context import Slot
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.settings import RouteConfig, TargetConfig

#: A route to dispatch this request to in place of the one its ``model`` names.
ROUTE_OVERRIDE: Slot[RouteState] = Slot("routing.override")


def single_target_route(
    name: str, target: TargetConfig, providers: ProviderRegistry, ctx: ProviderContext
) -> RouteState:
    """A route named ``name`` served by ``target`` alone, its provider built now.

    Raises :class:`~lmdeck.settings.ConfigError` when the provider cannot serve ``target``.
    """
    return RouteState(
        RouteConfig(name=name, targets=[target]),
        [TargetState(target, providers.create(target, ctx))],
        WeightedRandom(),
    )


async def close_route(route: RouteState) -> None:
    """Close the providers :func:`single_target_route` built."""
    for target in route.targets:
        await target.provider.aclose()
