"""The prompt registry: named prompts with immutable versions, labels with their move history, diffs.

A version is a chat message list or a text, each a sandboxed Jinja2 template
with declared, typed variables, default request parameters, an optional bound
route, a commit message and its author. It is checked when it is created, so
a version that is stored always renders::

    prompts = PromptRegistry(db, live, audit, settings)
    await prompts.create_version("support-reply", PromptVersionSpec(text="Hi {{ name }}",
                                 variables={"name": "string"}), developer)
    await prompts.move("support-reply", "staging", 1, reason="try it", principal=developer)
    rendered = await prompts.render("support-reply", {"name": "Ada"}, developer, label="staging")
"""

from __future__ import annotations

from typing import Any

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import check_read
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptLimitError, PromptRenderError, PromptTemplate, PromptTemplateError
from lmdeck.registry.catalog import AuditTrail, Catalog
from lmdeck.registry.diff import prompt_diff
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.rendering import TemplateRenderer
from lmdeck.registry.snapshot import DEFAULT_PROMPT_LABEL, CompiledPrompt
from lmdeck.registry.versions import not_found
from lmdeck.settings import Settings


def render_error(exc: PromptRenderError, param: str, prefix: str = "") -> APIError:
    """The 400 a failed render answers: ``render_limit_exceeded`` naming the limit, else ``invalid_variables``."""
    if isinstance(exc, PromptLimitError):
        return APIError(400, f"{prefix}{exc}", param=param, code="render_limit_exceeded")
    return APIError(400, f"{prefix}{exc}", param=param, code="invalid_variables")


class PromptRegistry(Catalog[PromptVersionSpec]):
    """Serving class of ``/api/registry/prompts``."""

    def __init__(
        self,
        db: Database,
        live: LiveRegistry,
        audit: AuditTrail | None,
        settings: Settings,
        renderer: TemplateRenderer | None = None,
    ) -> None:
        super().__init__("prompt", db, live, audit, settings)
        self.renderer = renderer or TemplateRenderer()

    def validate(self, spec: PromptVersionSpec) -> None:
        try:
            PromptTemplate(spec)
        except PromptTemplateError as exc:
            raise APIError(
                400, f"the prompt template is invalid: {exc}", param="template", code="invalid_template"
            ) from None

    def compiled(self, name: str, principal: Principal, label: str | None, version: int | None) -> CompiledPrompt:
        """The live version a label or number names, when ``principal`` may read the prompt."""
        snapshot = self.live.snapshot
        check_read(principal, snapshot.owner("prompt", name), lambda: not_found("prompt", name))
        return snapshot.prompt(name, label=label, version=version)

    async def resolve(
        self, name: str, principal: Principal, *, label: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """The version a label (default ``production``) or number names, from the live registry."""
        compiled = self.compiled(name, principal, label, version)
        return {**compiled.version.to_dict(), "label": (label or DEFAULT_PROMPT_LABEL) if version is None else None}

    async def render(
        self,
        name: str,
        variables: dict[str, Any],
        principal: Principal,
        *,
        label: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        compiled = self.compiled(name, principal, label, version)
        try:
            rendered = await self.renderer.render(compiled.template, variables, key=compiled.version.digest)
        except PromptRenderError as exc:
            raise render_error(exc, "variables") from None
        out: dict[str, Any] = {"name": name, "version": compiled.version.version}
        out["text" if isinstance(rendered, str) else "messages"] = rendered
        out["parameters"] = compiled.version.spec.parameters
        out["route"] = compiled.version.spec.route
        return out

    async def diff(self, name: str, from_version: int, to_version: int, principal: Principal) -> dict[str, Any]:
        old = await self.version(name, from_version, principal)
        new = await self.version(name, to_version, principal)
        return prompt_diff(old, new)
