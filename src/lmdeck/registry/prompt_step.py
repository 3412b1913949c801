"""The ``prompt`` step: a chat request that names a registered prompt gets it rendered.

    {"model": "support",                       # optional when the prompt is bound to a route
     "messages": [],                           # appended after the rendered ones
     "prompt": {"name": "support-reply", "label": "production", "variables": {"customer": "Ada"}}}

With the OpenAI SDK the field goes in ``extra_body={"prompt": {...}}``. The
version's ``parameters`` fill the request fields the caller left unset, the
request goes to ``model`` if given, else to the prompt's route, and the trace
is stamped with the prompt's name and version. Missing, unknown or mistyped
variables are a 400 that names them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result, Slot
from lmdeck.policy.ownership import check_read
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.templates import PromptRenderError
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.prompt_registry import render_error
from lmdeck.registry.rendering import TemplateRenderer
from lmdeck.registry.snapshot import RegistrySnapshot, missing_prompt

#: The prompt a request was rendered from: its name, version and digest.
PromptStamp = tuple[str, int, str]
#: Where the steps leave the prompt and the registry snapshot a request was served with.
PROMPT: Slot[PromptStamp] = Slot("registry.prompt")
SNAPSHOT: Slot[RegistrySnapshot] = Slot("registry.snapshot")


class PromptReference(BaseModel):
    """The ``prompt`` field of a chat request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    label: str | None = None
    version: int | None = Field(default=None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _label_or_version(self) -> PromptReference:
        if self.label is not None and self.version is not None:
            raise ValueError("give `label` or `version`, not both")
        return self


def parse_reference(raw: Any) -> PromptReference:
    try:
        return PromptReference.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("prompt", *err["loc"]))
        raise APIError(400, f"{where}: {err['msg']}", param=where, code="invalid_prompt") from None


class RenderPrompt:
    """Renders ``prompt`` into the request's messages; placed right after ``authenticate``."""

    name = "prompt"

    def __init__(self, live: LiveRegistry, renderer: TemplateRenderer | None = None) -> None:
        self.live = live
        self.renderer = renderer or TemplateRenderer()

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        body = ctx.body
        raw = getattr(body, "prompt", None) if isinstance(body, ChatCompletionRequest) else None
        if raw is None or not isinstance(body, ChatCompletionRequest):
            return await call_next(ctx)
        ref = parse_reference(raw)
        snapshot = self.live.snapshot
        if ctx.principal is not None:
            # A key renders its own team's prompts and shared ones; another team's is as good as missing.
            check_read(ctx.principal, snapshot.owner("prompt", ref.name), lambda: missing_prompt(ref.name))
        compiled = snapshot.prompt(ref.name, label=ref.label, version=ref.version)
        version = compiled.version
        try:
            messages = await self.renderer.render_messages(
                compiled.template, ref.variables, key=version.digest, flags=ctx.flags
            )
        except PromptRenderError as exc:
            raise render_error(exc, "prompt.variables", f"prompt {ref.name!r} v{version.version}: ") from None
        route = body.model or version.spec.route
        if not route:
            raise APIError(
                400,
                f"prompt {ref.name!r} v{version.version} is bound to no route: send `model`",
                param="model",
                code="missing_model",
            )
        principal = ctx.principal
        if principal is not None and not principal.may_use(route):
            raise APIError(403, f"this key may not use the model {route!r}", code="model_not_allowed", param="model")
        given = body.model_dump(exclude_unset=True)
        given["messages"] = messages + [m.model_dump(exclude_none=True) for m in body.messages]
        given["model"] = route
        ctx.body = _validated({**version.spec.parameters, **given})
        ctx.route_name = route
        ctx.trace.prompt_name = ref.name
        ctx.trace.prompt_version = version.version
        ctx.slots.put(PROMPT, (ref.name, version.version, version.digest))
        ctx.slots.put(SNAPSHOT, snapshot)
        return await call_next(ctx)


def _validated(data: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        param, message = validation_param(exc.errors())
        raise APIError(400, f"the rendered request is invalid: {param}: {message}", param=param) from None
