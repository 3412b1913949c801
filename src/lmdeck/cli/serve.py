"""``lmdeck serve``: one process, or ``--workers N`` processes on one port (docs/serving.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from lmdeck.cli.listening import announce, uvicorn_options
from lmdeck.cli.tls import tls_problem
from lmdeck.config import ConfigFileError, load_settings
from lmdeck.policy.at_rest import restrict_umask, secure_data_dir
from lmdeck.settings import ConfigError, Settings, forget_own_secrets


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="path of lmdeck.yaml"),
    host: str | None = typer.Option(None, help="address to listen on"),
    port: int | None = typer.Option(None, help="port to listen on"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="worker processes on the port (SO_REUSEPORT; env LMDECK_WORKERS)"
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="PEM certificate (chain): serve HTTPS (with --tls-key; env LMDECK_TLS_CERT)"
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert (env LMDECK_TLS_KEY)"),
) -> None:
    """Start the gateway."""
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    if tls_cert is not None:
        overrides["tls_cert"] = tls_cert
    if tls_key is not None:
        overrides["tls_key"] = tls_key
    # Everything this process creates (store, WAL, spool, master key, log) is the owner's alone.
    restrict_umask()
    try:
        settings = load_settings(config, overrides=overrides)
        secure_data_dir(settings)
    except (ConfigFileError, ConfigError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if settings.tls_cert is not None and settings.tls_key is not None:
        problem = tls_problem(settings.tls_cert, settings.tls_key)
        if problem is not None:
            typer.echo(f"lmdeck cannot start: {problem}", err=True)
            raise typer.Exit(2)
    from lmdeck.tracing.spool_dirs import spool_holders

    holder = spool_holders(settings.spool_dir)
    if holder is not None:
        typer.echo(
            f"error: another lmdeck (pid {holder}) is serving the data directory {settings.data_dir}; "
            "stop it, or give this one its own with LMDECK_DATA_DIR",
            err=True,
        )
        raise typer.Exit(1)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.log_file is not None:
        handlers.append(logging.FileHandler(settings.log_file, encoding="utf-8"))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    # Client libraries log every upstream call at INFO: that is what traces are for.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.workers > 1:
        from lmdeck.cli.serve_workers import serve_workers

        raise typer.Exit(serve_workers(settings))
    _serve_one(settings)


def _serve_one(settings: Settings) -> None:
    import uvicorn

    from lmdeck.app.assembly import build_gateway
    from lmdeck.app.factory import create_app
    from lmdeck.app.heap import freeze_startup_heap
    from lmdeck.console import install_console
    from lmdeck.db.lease import leader_lease
    from lmdeck.tracing.spool_dirs import orphan_spools, replay_leftovers

    try:
        gateway = build_gateway(settings, lease=leader_lease(settings.store_url, settings.data_dir))
        # An earlier run with --workers left spools of its own: stored before anything is served.
        replay_leftovers(settings, gateway.db, orphan_spools(settings.spool_dir, workers=1))
        app = create_app(settings, gateway=gateway)
        install_console(app, settings)
    except ConfigError as exc:
        typer.echo(f"lmdeck cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    # The admin key is hashed into the keys table and the master key is held by the secret box:
    # neither stays in the environment for a lookup or a child process to find.
    forget_own_secrets()
    announce(settings, settings.port)
    # What start-up built lives as long as the process: the collector need not walk it again.
    freeze_startup_heap()
    uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))
