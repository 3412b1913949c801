"""The routes every registry kind with pointers has, written once: ``/api/registry/models`` and
``/api/registry/prompts`` are each :func:`pointer_router` of their :class:`PointerKind`.

A model's aliases and a prompt's labels are one idea (a named, movable, audited pointer to a
version), served by one :class:`~lmdeck.registry.catalog.Catalog` per kind; a kind's module adds
the routes only it has (a prompt's ``resolve``, ``render`` and ``diff``)::

    MODELS = PointerKind(kind="model", spec=ModelVersionSpec, catalog=lambda r: runtime_of(r).models, ...)
    router = pointer_router(MODELS)   # GET/POST "", GET/PATCH /{name}, versions, aliases, history

Each route keeps its kind's words on the wire: the path segment (``aliases``/``labels``), the
pointer's path parameter and the history filter (``alias``/``label``), the operation ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from lmdeck.app.boundary import GuardedRoute
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import OwnershipUpdate
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import MoveRequest, ReasonRequest, RegisterRequest
from lmdeck.registry.catalog import Catalog
from lmdeck.registry.labels import POINTER_PLURAL, POINTER_WORD
from lmdeck.registry.versions import Kind


@dataclass(frozen=True)
class PointerKind:
    """How one registry kind appears over HTTP: its words, its version spec, its serving catalog."""

    kind: Kind
    #: The body of ``POST /{name}/versions``: the kind's version spec.
    spec: type[BaseModel]
    #: The kind's serving class for a request.
    catalog: Callable[[Request], Catalog[Any]]
    #: Summaries of the routes whose wording is the kind's own.
    list_summary: str
    register_summary: str
    show_summary: str
    history_summary: str

    @property
    def word(self) -> str:
        """``alias`` or ``label``."""
        return POINTER_WORD[self.kind]

    @property
    def plural(self) -> str:
        """``aliases`` or ``labels``."""
        return POINTER_PLURAL[self.kind]

    @property
    def prefix(self) -> str:
        return f"/api/registry/{self.kind}s"


def pointer_router(kind: PointerKind) -> APIRouter:
    """The kind's catalog, version and pointer routes under ``/api/registry/<kind>s``."""
    router = APIRouter(prefix=kind.prefix, tags=["registry"], route_class=GuardedRoute)
    k, word, pointer_path = kind.kind, kind.word, f"/{{name}}/{kind.plural}/{{{kind.word}}}"

    async def list_entries(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        return {"object": "list", "data": await kind.catalog(request).entries(principal)}

    async def register(
        request: Request, body: RegisterRequest, principal: Principal = Depends(require("developer"))
    ) -> dict[str, Any]:
        return await kind.catalog(request).register(
            body.name, body.description, principal, team=body.team, visibility=body.visibility
        )

    async def show(request: Request, name: str, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        return await kind.catalog(request).show(name, principal)

    async def update_owner(
        request: Request, name: str, body: OwnershipUpdate, principal: Principal = Depends(require("developer"))
    ) -> dict[str, Any]:
        return await kind.catalog(request).update_owner(
            name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
        )

    async def create_version(
        request: Request, name: str, body: Any, principal: Principal = Depends(require("developer"))
    ) -> dict[str, Any]:
        return (await kind.catalog(request).create_version(name, body, principal)).to_dict()

    # FastAPI reads the body's schema from the annotation: the kind's version spec.
    create_version.__annotations__["body"] = kind.spec

    async def show_version(
        request: Request,
        name: str,
        version: int = Path(ge=1, le=INT64_MAX, description="a version number"),
        principal: Principal = Depends(require("viewer")),
    ) -> dict[str, Any]:
        return (await kind.catalog(request).version(name, version, principal)).to_dict()

    async def move(
        request: Request,
        name: str,
        body: MoveRequest,
        pointer: str = Path(alias=word),
        principal: Principal = Depends(require("developer")),
    ) -> dict[str, Any]:
        return await kind.catalog(request).move(
            name, pointer, body.version, reason=body.reason, principal=principal, expected_version=body.expected_version
        )

    async def remove(
        request: Request,
        name: str,
        pointer: str = Path(alias=word),
        reason: str | None = None,
        expected_version: int | None = Query(
            None, ge=1, le=INT64_MAX, description="remove only if it points at this version"
        ),
        principal: Principal = Depends(require("developer")),
    ) -> dict[str, Any]:
        return await kind.catalog(request).move(
            name, pointer, None, reason=reason, principal=principal, expected_version=expected_version
        )

    async def rollback(
        request: Request,
        name: str,
        pointer: str = Path(alias=word),
        body: ReasonRequest | None = None,
        principal: Principal = Depends(require("developer")),
    ) -> dict[str, Any]:
        reason = body.reason if body else None
        expected = body.expected_version if body else None
        return await kind.catalog(request).rollback(
            name, pointer, reason=reason, principal=principal, expected_version=expected
        )

    async def history(
        request: Request,
        name: str,
        pointer: str | None = Query(None, alias=word),
        limit: int = Query(100, ge=1, le=1000),
        principal: Principal = Depends(require("viewer")),
    ) -> dict[str, Any]:
        return {"object": "list", "data": await kind.catalog(request).history(name, principal, pointer, limit)}

    a_word = f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
    routes: list[tuple[str, str, Callable[..., Any], str, str, int | None]] = [
        ("GET", "", list_entries, f"list_{k}s", kind.list_summary, None),
        ("POST", "", register, f"register_{k}", kind.register_summary, 201),
        ("GET", "/{name}", show, f"show_{k}", kind.show_summary, None),
        (
            "PATCH",
            "/{name}",
            update_owner,
            f"update_{k}_owner",
            "Share or unshare it (its team or an admin), or give it to another team (admins)",
            None,
        ),
        ("POST", "/{name}/versions", create_version, f"create_{k}_version", "Add an immutable version", 201),
        ("GET", "/{name}/versions/{version}", show_version, f"show_{k}_version", "One version", None),
        ("PUT", pointer_path, move, f"move_{word}", f"Point {a_word} at a version (live at once)", None),
        ("DELETE", pointer_path, remove, f"remove_{word}", f"Remove {a_word}", None),
        (
            "POST",
            f"{pointer_path}/rollback",
            rollback,
            f"rollback_{word}",
            f"Move {a_word} back to its previous version",
            None,
        ),
        ("GET", "/{name}/history", history, f"{k}_history", kind.history_summary, None),
    ]
    for method, path, endpoint, name, summary, status in routes:
        extra: dict[str, Any] = {"status_code": status} if status else {}
        router.add_api_route(path, endpoint, methods=[method], name=name, summary=summary, **extra)
    return router
