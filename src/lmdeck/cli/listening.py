"""How each ``lmdeck serve`` process runs uvicorn, and the lines it prints once it listens.

``uvicorn.run(app, host=..., port=..., **uvicorn_options(settings))``, then ``announce(settings, port)``
prints ``lmdeck listening on https://127.0.0.1:4000/v1 ...`` and the console's address.
"""

from __future__ import annotations

from typing import Any

import typer

from lmdeck.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What every ``lmdeck serve`` process hands uvicorn besides the app and where to listen."""
    from lmdeck.app.http_protocol import guarded_protocol

    return {
        "log_level": "warning",
        "access_log": False,
        "loop": "auto",
        "http": guarded_protocol(
            header_timeout=settings.header_timeout,
            max_header_bytes=settings.max_header_bytes,
            body_timeout=settings.body_timeout,
        ),
        "timeout_graceful_shutdown": 10,
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
    }


def announce(settings: Settings, port: int) -> None:
    """The start-up lines: where the API and the console answer."""
    origin = f"{settings.scheme}://{settings.host}:{port}"
    workers = f"{settings.workers} workers; " if settings.workers > 1 else ""
    typer.echo(
        f"lmdeck listening on {origin}/v1 "
        f"({workers}another port: LMDECK_PORT or --port; the CLI finds it with LMDECK_BASE_URL={origin})",
        err=True,
    )
    typer.echo(f"lmdeck console at {origin}/console/ (sign in with an API key)", err=True)
