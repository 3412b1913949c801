"""Registry: models and prompts with their versions, aliases/labels and move history; a side-by-side
diff of two prompt versions; datasets with their versions, provenance and a page of rows.

Every read and every move goes through the registry's own catalogs with the signed-in principal, as
``/api/registry/...`` does: the catalogs apply team ownership and protected pointers, and a move is
in the move history and the audit log like one made through the API.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.services import runtime_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.registry.catalog import Catalog
from lmdeck.registry.diff import prompt_diff, side_by_side
from lmdeck.registry.labels import POINTER_PLURAL, POINTER_WORD
from lmdeck.registry.snapshot import DEFAULT_PROMPT_LABEL
from lmdeck.registry.versions import Kind

router = APIRouter(prefix="/console/registry", include_in_schema=False)

PointerKindName = Literal["models", "prompts"]
#: Dataset rows shown per page.
ROWS_PER_PAGE = 50


def _catalog(request: Request, kind: PointerKindName) -> Catalog[Any]:
    runtime = runtime_of(request)
    return runtime.models if kind == "models" else runtime.prompts


def refused(request: Request, user: ConsoleUser, exc: APIError) -> Response:
    """The service's refusal (404, 403, 409...) as the console's error page, with its status and message."""
    return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    runtime = runtime_of(request)
    who = user.principal
    return render(
        request,
        user,
        "registry/index.html",
        {
            "models": await runtime.models.entries(who),
            "prompts": await runtime.prompts.entries(who),
            "datasets": await runtime.datasets.entries(who),
        },
    )


@router.post("/{kind}/{name}/move")
async def move(
    request: Request,
    kind: PointerKindName,
    name: str,
    pointer: str = Form(min_length=1, max_length=200),
    version: int = Form(ge=1, le=INT64_MAX),
    reason: str | None = Form(None, max_length=2000),
    user: ConsoleUser = Depends(console_user("developer")),
) -> Response:
    """Point ``name@pointer`` at ``version``: the catalog's move (audited, refused as the API refuses)."""
    try:
        await _catalog(request, kind).move(name, pointer, version, reason=reason or None, principal=user.principal)
    except APIError as exc:
        return refused(request, user, exc)
    return RedirectResponse(f"/console/registry/{kind}/{name}", status_code=303)


@router.get("/prompts/{name}/diff")
async def diff(
    request: Request,
    name: str,
    from_version: int = Query(alias="from", ge=1, le=INT64_MAX),
    to_version: int = Query(alias="to", ge=1, le=INT64_MAX),
    user: ConsoleUser = Depends(console_user("viewer")),
) -> Response:
    prompts = runtime_of(request).prompts
    try:
        old = await prompts.version(name, from_version, user.principal)
        new = await prompts.version(name, to_version, user.principal)
    except APIError as exc:
        return refused(request, user, exc)
    return render(
        request,
        user,
        "registry/diff.html",
        {
            "name": name,
            "old": old,
            "new": new,
            "rows": side_by_side(old, new),
            "changes": prompt_diff(old, new)["changes"],
        },
    )


@router.get("/datasets/{name}")
async def dataset(
    request: Request,
    name: str,
    version: str | None = Query(None, min_length=1, max_length=100, description="a number or digest; the newest"),
    offset: int = Query(0, ge=0, le=INT64_MAX),
    user: ConsoleUser = Depends(console_user("viewer")),
) -> Response:
    datasets = runtime_of(request).datasets
    try:
        versions = await datasets.versions(name, user.principal)
        ref = version if version is not None else str(versions[-1].version)
        shown, rows = await datasets.rows(name, ref, offset, ROWS_PER_PAGE, user.principal)
    except APIError as exc:
        return refused(request, user, exc)
    return render(
        request,
        user,
        "registry/dataset.html",
        {
            "name": name,
            "versions": [v.to_dict() for v in versions],
            "shown": shown.to_dict(),
            "rows": [r.model_dump(mode="json") for r in rows],
            "offset": offset,
            "per_page": ROWS_PER_PAGE,
            "has_more": offset + len(rows) < shown.row_count,
        },
    )


# Last: its path would also match the diff and dataset pages.
@router.get("/{kind}/{name}")
async def show(
    request: Request, kind: PointerKindName, name: str, user: ConsoleUser = Depends(console_user("viewer"))
) -> Response:
    catalog = _catalog(request, kind)
    try:
        entry = await catalog.show(name, user.principal)
        history = await catalog.history(name, user.principal, None, 100)
    except APIError as exc:
        return refused(request, user, exc)
    singular: Kind = "model" if kind == "models" else "prompt"
    word, plural = POINTER_WORD[singular], POINTER_PLURAL[singular]
    versions = [v["version"] for v in entry["versions"]]
    return render(
        request,
        user,
        "registry/entry.html",
        {
            "kind": kind,
            "singular": singular,
            "word": word,
            "plural": plural,
            "entry": entry,
            "pointers": entry[plural],
            "versions": entry["versions"],
            "numbers": versions,
            "history": history,
            "may_move": user.may("developer"),
            # The playground opens on the version requests get by default when there is one, else the newest.
            "shown_version": entry[plural].get(DEFAULT_PROMPT_LABEL, versions[-1] if versions else None),
        },
    )


PAGE = ConsolePage(title="Registry", path="/console/registry", min_role="viewer", router=router, order=30)
