"""The prompt playground: fill a prompt version's variables, preview the rendered messages, and run
it on a route the signed-in key may call.

A preview is the prompt catalog's render (``POST /api/registry/prompts/{name}/render``), with the
signed-in principal. A run is a chat request sent in-process through the gateway's pipeline
(:class:`~lmdeck.evaluation.inference.PipelineInference`) as the signed-in key's principal, never an
HTTP call: it is authenticated, rate limited, budgeted, guarded, traced and billed to that key and its
team like the same request sent to ``/v1/chat/completions``, and any key that may sign in to the console
may run, as any key may call that endpoint. Refusals (no such version, route or variable, a route the
key may not use, a budget spent) are the pipeline's and the catalog's, with their 4xx status.

    GET  /console/registry/prompts/{name}/playground?version=N    the form (version N, default the newest)
    POST /console/registry/prompts/{name}/playground/preview      the rendered messages (htmx fragment)
    POST /console/registry/prompts/{name}/playground/run          the answer, tokens, cost, latency, trace
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.routes.openai_api import model_cards
from lmdeck.app.services import gateway_of, runtime_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.playground import read_playground_form, read_variables, variable_fields
from lmdeck.console.rendering import is_htmx, render
from lmdeck.evaluation.inference import PipelineInference
from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.protocol import APIError
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptTemplate
from lmdeck.providers.base import UpstreamError
from lmdeck.registry.versions import Version

router = APIRouter(prefix="/console/registry/prompts/{name}/playground", include_in_schema=False)

#: Run requests' ids start with this, as ``/v1`` ones start with ``req_``.
REQUEST_PREFIX = "req_console_"


def _version_number(raw: object) -> int | None:
    """``raw`` (a query or form value) as a version number; None when absent; 400 when not one."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not raw.isdigit() or not 1 <= int(raw) <= INT64_MAX:
        raise APIError(400, f"version: {str(raw)[:40]!r} is not a version number (1, 2, ...)", param="version")
    return int(raw)


async def _version(request: Request, user: ConsoleUser, name: str, raw: object) -> Version[PromptVersionSpec]:
    """The version ``raw`` names (the newest when absent), as the catalog lets ``user`` read it."""
    prompts = runtime_of(request).prompts
    number = _version_number(raw)
    if number is None:
        versions = (await prompts.show(name, user.principal))["versions"]
        if not versions:
            raise APIError(404, f"prompt {name!r} has no version yet: create one first", param="version")
        number = versions[-1]["version"]
    return await prompts.version(name, number, user.principal)


def chat_routes(request: Request, user: ConsoleUser) -> list[str]:
    """The chat routes ``user``'s key may call, as ``GET /v1/models`` lists them for that key."""
    return [card.id for card in model_cards(request, user.principal) if card.kind == "chat"]


async def _page(
    request: Request,
    user: ConsoleUser,
    name: str,
    version: Version[PromptVersionSpec],
    form: Mapping[str, Any] | None = None,
    *,
    fragment: str | None = None,
    status_code: int = 200,
    **shown: Any,
) -> Response:
    """The playground page, or only ``fragment`` (``preview``/``result``) when htmx asked."""
    if fragment is not None and is_htmx(request):
        return render(request, user, f"registry/playground_{fragment}.html", shown, status_code=status_code)
    entry = await runtime_of(request).prompts.show(name, user.principal)
    routes = chat_routes(request, user)
    bound = version.spec.route
    chosen = (form or {}).get("route") or (bound if bound in routes else (routes[0] if routes else ""))
    context = {
        "name": name,
        "entry": entry,
        "numbers": [v["version"] for v in entry["versions"]],
        "version": version,
        "fields": variable_fields(version.spec),
        "routes": routes,
        "chosen_route": chosen,
        "values": dict(form or {}),
        "may_run": user.may("inference"),
        **shown,
    }
    return render(request, user, "registry/playground.html", context, status_code=status_code)


def _refused(request: Request, user: ConsoleUser, exc: APIError, fragment: str | None = None) -> Response:
    """``exc`` as the error page, or in ``fragment`` (``preview``/``result``) when htmx asked for one."""
    if fragment is not None and is_htmx(request):
        shown = {"preview_error" if fragment == "preview" else "run_error": exc.message}
        return render(request, user, f"registry/playground_{fragment}.html", shown, status_code=exc.status)
    return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)


@router.get("")
async def playground(request: Request, name: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        version = await _version(request, user, name, request.query_params.get("version"))
        return await _page(request, user, name, version)
    except APIError as exc:
        return _refused(request, user, exc)


@router.post("/preview")
async def preview(request: Request, name: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    """The version rendered with the form's variables: the catalog's render, as ``/api`` renders it."""
    form = await request.form()
    try:
        version = await _version(request, user, name, form.get("version"))
    except APIError as exc:
        return _refused(request, user, exc, "preview")
    try:
        variables = read_variables(form, version.spec)
        rendered = await runtime_of(request).prompts.render(name, variables, user.principal, version=version.version)
    except APIError as exc:
        return await _page(
            request, user, name, version, form, fragment="preview", status_code=exc.status, preview_error=exc.message
        )
    messages = PromptTemplate.messages_of(rendered["messages"] if "messages" in rendered else rendered["text"])
    return await _page(request, user, name, version, form, fragment="preview", messages=messages)


@router.post("/run")
async def run(request: Request, name: str, user: ConsoleUser = Depends(console_user("inference"))) -> Response:
    """The version run through the pipeline as the signed-in key (module docs)."""
    form = await request.form()
    try:
        version = await _version(request, user, name, form.get("version"))
    except APIError as exc:
        return _refused(request, user, exc, "result")
    inference = PipelineInference(
        gateway_of(request).pipeline,
        None,
        principal=user.principal,
        tags=(),
        request_prefix=REQUEST_PREFIX,
        after_response=True,
    )
    try:
        choice = read_playground_form(form, version.spec)
        try:
            reply = await inference.chat(choice.chat_body(name, version.version))
        except UpstreamError as exc:
            raise upstream_to_api_error(exc) from None
    except APIError as exc:
        return await _page(
            request, user, name, version, form, fragment="result", status_code=exc.status, run_error=exc.message
        )
    return await _page(request, user, name, version, form, fragment="result", reply=reply, route=choice.route)


PAGE = ConsolePage(
    title="Playground",
    path="/console/registry/prompts/playground",
    min_role="viewer",
    router=router,
    order=31,
    nav=False,
)
