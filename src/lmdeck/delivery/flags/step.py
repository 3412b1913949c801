"""The pipeline steps of feature flags: ``flags`` (values per request) and ``flag-routes`` (branches, kill switches).

``flags`` runs first in phase ``resolve``: it puts a :class:`RequestFlags` on ``ctx.flags``, a
mapping that evaluates a flag the first time a later step (a route branch, a prompt template,
a kill switch) reads it, against the snapshot taken when the request arrived. When the request
ends, the values it read are stamped on ``trace.metadata["flags"]`` and counted in
``lmdeck_flag_evaluations_total{flag, value}``.

``flag-routes`` runs after ``prompt`` (the route is known then, for a prompt bound to one):
the route's ``flags`` branches (:class:`lmdeck.settings.RouteFlagRule`) may send the request to
another route or fill parameters, and a kill switch of the route that is on for this request
refuses it with a 503 naming the switch::

    {"error": {"message": "route 'support' is switched off by its kill switch 'kill.support': ...",
               "type": "service_unavailable", "param": null, "code": "route_killed"}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError

from lmdeck.delivery.flags.evaluation import FlagSubject, evaluate
from lmdeck.delivery.flags.live import FlagSnapshot, LiveFlags
from lmdeck.evaluation.experiments.step import CONVERSATION_HEADER
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.protocol import APIError
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.flags import FlagEvaluation, FlagValue, type_of
from lmdeck.settings import RouteConfig, RouteFlagRule

#: Where a request's flag values are stamped on its trace.
TRACE_KEY = "flags"


def value_label(value: FlagValue) -> str:
    """A value as the metric's ``value`` label writes it (``true``, ``terse``, ``0.5``)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def same_value(a: FlagValue, b: FlagValue) -> bool:
    """Equal values of one type (``True`` is not ``1``)."""
    return type_of(a) == type_of(b) and a == b


class RequestFlags(Mapping[str, FlagValue]):
    """One request's flags over one snapshot: each evaluated on first read, then kept.

    A request reads only the flags of its route: those whose ``routes`` name the route it is on at
    the time of the read, and those that name no route (global flags, which only admins create).
    Another team's flag is absent here, so it cannot steer a route's branches or templates by
    taking a name they read.

    >>> flags = RequestFlags(snapshot, FlagSubject(user="ada"))  # doctest: +SKIP
    >>> flags["support-v2"]                                      # doctest: +SKIP
    True
    >>> flags.evaluations                                        # doctest: +SKIP
    {'support-v2': FlagEvaluation(name='support-v2', value=True, reason='rule', rule=0)}
    """

    def __init__(
        self, snapshot: FlagSnapshot, subject: FlagSubject, route: Callable[[], str | None] = lambda: None
    ) -> None:
        self.snapshot = snapshot
        self.subject = subject
        #: The route the request is on when a flag is read (None: global flags only).
        self.route = route
        #: The flags read so far, by name.
        self.evaluations: dict[str, FlagEvaluation] = {}

    def _readable(self, name: object, route: str | None) -> bool:
        flag = self.snapshot.flags.get(name) if isinstance(name, str) else None
        return flag is not None and (not flag.routes or route in flag.routes)

    def on_route(self, name: str, route: str | None) -> FlagValue | None:
        """``name``'s value for this request as read on ``route``; None when that route may not read it."""
        found = self.evaluations.get(name)
        if found is None:
            if not self._readable(name, route):
                return None
            found = self.evaluations[name] = evaluate(self.snapshot.flags[name], self.subject)
        return found.value

    def __getitem__(self, name: str) -> FlagValue:
        value = self.on_route(name, self.route())
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return name in self.evaluations or self._readable(name, self.route())

    def __iter__(self) -> Iterator[str]:
        route = self.route()
        return (name for name in self.snapshot.flags if name in self.evaluations or self._readable(name, route))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def used(self) -> dict[str, FlagValue]:
        """The values read, by flag name."""
        return {name: e.value for name, e in self.evaluations.items()}


def subject_of(ctx: RequestContext) -> FlagSubject:
    """Who the request comes from: key, team, user (the body's ``user``, else the key's), conversation, headers."""
    principal = ctx.principal
    body = ctx.body
    metadata = getattr(body, "metadata", None)
    conversation = metadata.get("conversation_id") if isinstance(metadata, dict) else None
    headers = {k.lower(): v for k, v in ctx.headers.items()}
    return FlagSubject(
        key_id=principal.key_id if principal is not None else None,
        team_id=principal.team_id if principal is not None else None,
        user=getattr(body, "user", None) or (principal.user_id if principal is not None else None) or ctx.trace.user,
        conversation_id=conversation or headers.get(CONVERSATION_HEADER),
        request_id=ctx.request_id,
        headers=headers,
    )


class FlagsStep:
    """Puts the request's flags on ``ctx.flags``; stamps and counts the values read."""

    name = "flags"

    def __init__(self, live: LiveFlags, evaluations: Counter) -> None:
        self.live = live
        self.evaluations = evaluations

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        flags = RequestFlags(self.live.snapshot, subject_of(ctx), route=lambda: ctx.route_name)
        ctx.flags = flags
        try:
            return await call_next(ctx)
        finally:
            used = flags.used()
            if used:
                ctx.trace.metadata[TRACE_KEY] = used
                for name, value in used.items():
                    self.evaluations.labels(flag=name, value=value_label(value)).inc()


class FlagRoutes:
    """Applies the route's flag branches, then refuses the request if a kill switch of its route is on."""

    name = "flag-routes"

    def __init__(
        self,
        live: LiveFlags,
        route_config: Callable[[str], RouteConfig | None],
        eligible: RouteCheck = route_refusal,
    ) -> None:
        self.live = live
        self.route_config = route_config
        self.eligible = eligible

    def branch(self, ctx: RequestContext, config: RouteConfig) -> RouteFlagRule | None:
        """The first of the route's branches whose flag gives its value for this request."""
        for rule in config.flags:
            if rule.flag in ctx.flags and same_value(ctx.flags[rule.flag], rule.equals):
                return rule
        return None

    def apply(self, ctx: RequestContext, rule: RouteFlagRule) -> None:
        body = ctx.body
        updates: dict[str, Any] = {}
        if rule.route is not None and rule.route != ctx.route_name:
            refusal = self.eligible(ctx, rule.route)
            if refusal is not None:
                # Like an experiment's variant: a route the key may not use leaves the request where it was.
                ctx.trace.metadata["flag_route_refused"] = f"{rule.flag}: {refusal.message}"
            else:
                updates["model"] = rule.route
        if rule.params:
            given = body.model_dump(exclude_unset=True)
            merged = {**rule.params, **given, **updates}
            try:
                ctx.body = type(body).model_validate(merged)
            except ValidationError as exc:
                param, message = validation_param(exc.errors())
                raise APIError(
                    400,
                    f"route {ctx.route_name!r}'s branch on flag {rule.flag!r} makes the request invalid: "
                    f"{param}: {message}: fix its `params`",
                    param=param,
                    code="invalid_flag_params",
                ) from None
        elif updates:
            ctx.body = body.model_copy(update=updates)
        if "model" in updates:
            ctx.route_name = updates["model"]
        ctx.trace.metadata["flag_branch"] = rule.flag

    def check_kill_switches(self, ctx: RequestContext, routes: list[str]) -> None:
        snapshot = self.live.snapshot
        for route in routes:
            for switch in snapshot.kill_switches(route):
                flags = ctx.flags
                value = (
                    flags.on_route(switch.name, route) if isinstance(flags, RequestFlags) else flags.get(switch.name)
                )
                if value is True:
                    ctx.trace.metadata["kill_switch"] = switch.name
                    raise APIError(
                        503,
                        f"route {route!r} is switched off by its kill switch {switch.name!r}: "
                        f"turn it off with `lmdeck flags kill {route} --off` (or `lmdeck flags disable {switch.name}`)",
                        type="service_unavailable",
                        code="route_killed",
                    )

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        requested = ctx.route_name
        config = self.route_config(requested) if requested else None
        if config is not None and config.flags:
            rule = self.branch(ctx, config)
            if rule is not None:
                self.apply(ctx, rule)
        self.check_kill_switches(ctx, list(dict.fromkeys(r for r in (requested, ctx.route_name) if r)))
        return await call_next(ctx)
