"""lmdeck's web console, served by ``lmdeck serve`` at ``/console/`` (see docs/console.md).

Server-rendered Jinja2 pages with htmx for partial updates and uPlot for charts (both vendored
under ``static/vendor``). Pages read data through the gateway's own services in process, as the
``/api`` routes do, with the same roles and team scope.

    app = create_app(settings)
    install_console(app, settings)
"""

from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.install import console_pages, install_console
from lmdeck.console.page import ConsolePage, PageRegistry
from lmdeck.console.rendering import render

__all__ = ["ConsolePage", "ConsoleUser", "PageRegistry", "console_pages", "console_user", "install_console", "render"]
