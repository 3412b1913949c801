"""The console's per-app state: its sessions, pages and template environment (``app.state.console``)."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment
from starlette.requests import Request

from lmdeck.console.page import PageRegistry
from lmdeck.console.sessions import SessionStore


@dataclass
class ConsoleState:
    """What :func:`lmdeck.console.install_console` keeps on the app."""

    sessions: SessionStore
    pages: PageRegistry
    templates: Environment


def console_state(request: Request) -> ConsoleState:
    """The console state of the app serving ``request``; a ``RuntimeError`` naming the fix without one."""
    state = getattr(request.app.state, "console", None)
    if not isinstance(state, ConsoleState):
        raise RuntimeError("this app has no console: add it with lmdeck.console.install_console(app)")
    return state
