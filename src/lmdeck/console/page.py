"""What a console page declares: its navigation entry, the role it needs, its routes and templates.

    router = APIRouter(prefix="/console/traces")

    @router.get("")
    async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
        return render(request, user, "traces/index.html", {"rows": ...})

    PAGE = ConsolePage(title="Traces", path="/console/traces", min_role="viewer", router=router, order=20)

Built-in pages are listed in :data:`lmdeck.console.pages.BUILTIN`; a package adds pages through the
``lmdeck.console_pages`` entry-point group, whose hook is ``register(pages: PageRegistry)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter

from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.access import Role


@dataclass(frozen=True)
class ConsolePage:
    """One console page.

    ``title`` and ``path`` (absolute, under ``/console``) make the navigation entry, shown to users
    holding ``min_role`` or stronger (``nav=False`` hides it); ``order`` sorts the navigation (lower
    first); ``router`` holds the page's routes, each of which still declares its own role with
    :func:`~lmdeck.console.auth.console_user`; ``templates`` is an extra template folder (third-party
    pages; built-ins keep theirs in ``lmdeck/console/templates/<page>/``).
    """

    title: str
    path: str
    min_role: Role
    router: APIRouter
    order: int = 100
    nav: bool = True
    templates: Path | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/console/"):
            raise ValueError(f"console page {self.title!r}: its path must start with /console/, got {self.path!r}")


@dataclass
class PageRegistry:
    """The pages the console serves, in navigation order; what the ``lmdeck.console_pages`` hooks fill."""

    pages: list[ConsolePage] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, page: ConsolePage) -> None:
        """Add ``page``; a second page at the same path is a ``ValueError`` naming both."""
        for known in self.pages:
            if known.path == page.path:
                raise ValueError(f"console pages {known.title!r} and {page.title!r} both claim {page.path}")
        self.pages.append(page)
        self.pages.sort(key=lambda p: (p.order, p.title))

    def visible_to(self, role: Role | None) -> list[ConsolePage]:
        """The navigation entries a user of ``role`` sees (none when signed out)."""
        if role is None:
            return []
        who = Principal(key_id="", role=role)
        return [p for p in self.pages if p.nav and who.at_least(p.min_role)]
