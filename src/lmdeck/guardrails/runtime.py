"""The guardrails of one gateway: built from the settings at start-up, their steps, their audit.

    guardrails = GuardrailRuntime.build(settings, router, applied, metrics.registry, policy, token)
    declarations = guardrails.steps()          # unmask, guard_input, guard_output
    guardrails.pipeline = pipeline             # for the `complete` resource (a judge's calls)

At start each guardrail with a ``warm()`` method (blocking: Presidio's analyzer, lingua's
detector) is warmed in a worker thread, so the first request does not pay for it. Then the declared guardrail policy (definitions, data policy, attachments of routes,
teams and keys, the data class of each target) is compared with the last one the audit log
holds; a change is appended as ``guardrails.policy`` with the policy before and after, so
``lmdeck audit`` shows who-knows-what changed when (the config file is the actor). Routes
applied with ``lmdeck apply`` are audited by the registry as they are applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from prometheus_client import CollectorRegistry

from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.eligibility import RouteEligibility
from lmdeck.gateway.routing.router import Router
from lmdeck.guardrails.base import GuardResources
from lmdeck.guardrails.config import AppliedAttachments, GuardrailConfig
from lmdeck.guardrails.registry import GuardrailRegistry, load_guardrails
from lmdeck.guardrails.resources import EMBED_ROUTE, gateway_resources
from lmdeck.guardrails.service import GuardrailService, policy_document, policy_hash
from lmdeck.guardrails.steps import steps
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.policy.audit import AuditEntry, AuditLog
from lmdeck.settings import RouteConfig, Settings

log = logging.getLogger(__name__)

#: The audit log's action for a change of the declared guardrail policy.
POLICY_ACTION = "guardrails.policy"


class GuardrailRuntime:
    """The built guardrails, their steps, and the audit of policy changes (a gateway service)."""

    def __init__(
        self,
        settings: Settings,
        service: GuardrailService,
        router: Router,
        route_config: Callable[[str], RouteConfig | None],
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.router = router
        self.route_config = route_config
        self.audit = audit
        self.pipeline: Pipeline | None = None
        #: The registered guardrail types the instances were built from.
        self.types = GuardrailRegistry()
        #: What the instances were lent (embeddings, completions on a route).
        self.resources = GuardResources()

    @classmethod
    def build(
        cls,
        settings: Settings,
        router: Router,
        applied: Callable[[str], RouteConfig | None],
        metrics_registry: CollectorRegistry | None = None,
        *,
        audit: AuditLog | None = None,
        token: str | None = None,
        team_name: Callable[[str | None], str | None] | None = None,
        registry: GuardrailRegistry | None = None,
        applied_attachments: Callable[[], AppliedAttachments] | None = None,
    ) -> GuardrailRuntime:
        """Builds every configured guardrail; raises ConfigError naming each problem of the configuration.

        ``applied_attachments`` returns the teams' and keys' attachments applied with ``lmdeck apply``
        now (read on each request, from memory: it must not block).
        """

        def route_config(name: str) -> RouteConfig | None:
            found = applied(name)
            if found is not None:
                return found
            state = router.get(name)
            return state.config if state is not None else None

        holder: list[GuardrailRuntime] = []
        terminal = Dispatcher(router) if router.get(EMBED_ROUTE) is not None else None
        resources = gateway_resources(terminal, lambda: holder[0].pipeline if holder else None, token)
        types = registry if registry is not None else load_guardrails()
        config = GuardrailConfig.build(settings, types, resources)
        if team_name is not None:
            config.team_name = team_name
        if applied_attachments is not None:
            config.applied = applied_attachments
        service = GuardrailService(config, route_config, metrics_registry, internal_token=token)
        runtime = cls(settings, service, router, route_config, audit)
        runtime.types = types
        runtime.resources = resources
        holder.append(runtime)
        return runtime

    def fallbacks(self, route: str) -> list[str]:
        config = self.route_config(route)
        return list(config.fallbacks) if config is not None else []

    def steps(self) -> list[StepDeclaration]:
        """The guardrail steps; none when no guardrail is defined (no route, team or key can use one then)."""
        if not self.service.config.instances:
            return []
        return steps(self.service, RouteEligibility(self.router.get), self.fallbacks)

    def _audit_policy(self) -> None:
        """Append the declared policy to the audit log when it differs from the last one recorded (blocking)."""
        assert self.audit is not None
        document = policy_document(self.settings)
        last: AuditEntry | None = None
        seq = 0
        while batch := self.audit.entries(after_seq=seq, limit=500, action=POLICY_ACTION):
            last, seq = batch[-1], batch[-1].seq
        before = last.to_dict()["after"].get("policy") if last is not None and last.after else None
        if before is not None and policy_hash(before) == policy_hash(document):
            return
        if before is None and not _declares_guardrails(self.settings):
            return  # none declared and none ever recorded: nothing changed
        self.audit.append("config", POLICY_ACTION, "guardrails", before=before, after={"policy": document})

    async def start(self) -> None:
        self.service.warm()  # models of built-ins load in the background while the rest starts
        if self.audit is not None:
            try:
                await anyio.to_thread.run_sync(self._audit_policy)
            except Exception:
                log.exception("the guardrail policy could not be recorded in the audit log")

    async def stop(self) -> None:
        await self.service.stop()


def _declares_guardrails(settings: Settings) -> bool:
    block = settings.guardrails
    return bool(block.definitions or block.data_policy or any(r.guardrails for r in settings.routes))
