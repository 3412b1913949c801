"""``lmdeck serve --workers N``: N worker processes serving one port, supervised by the parent.

The parent, before any worker exists: runs the migrations, stores what spools no worker will open
hold (an earlier run's, with another number of workers), binds one ``SO_REUSEPORT`` socket per
worker and holds the data directory's spool lock. Each worker ``K`` builds the whole app with its
own trace spool (``<spool_dir>/worker-K``, replayed at its start, so a worker that crashed loses
nothing it acknowledged), serves its socket, and competes for the leader lease that decides which
one runs the background jobs (:mod:`lmdeck.app.leadership`). Concurrency caps are counted in each
worker; so are rate limits and budget reservations unless ``redis.url`` is set (docs/serving.md).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import typer

from lmdeck.cli.listening import announce, uvicorn_options
from lmdeck.cli.reuseport import reuseport_sockets
from lmdeck.cli.worker_pool import WorkerPool
from lmdeck.settings import OWN_SECRETS, ConfigError, Settings, forget_own_secrets

log = logging.getLogger(__name__)


def per_worker_limits_notice(workers: int, *, shared: bool = False) -> str:
    """The line logged once at start: what ``workers`` processes mean for limits and budgets
    (``shared``: ``redis.url`` is set, so rate limits and budgets are counted in Redis)."""
    if shared:
        return (
            f"rate limits and budget reservations are shared through Redis (redis.url); concurrency caps "
            f"are counted in each of the {workers} workers: a key or team can reach up to {workers}x its "
            "concurrency limits (docs/serving.md)"
        )
    return (
        f"rate limits, concurrency caps and budget reservations are counted in each of the {workers} "
        f"workers: a key or team can reach up to {workers}x its per-minute and concurrency limits, "
        "and a budget can be overrun by what the other workers admit before they read its spend "
        "(docs/serving.md)"
    )


def _worker(settings: Settings, sockets: list[socket.socket], secrets: dict[str, str]) -> Callable[..., None]:
    def work(index: int, restarts: int, ready: Callable[[], None]) -> None:
        import uvicorn

        from lmdeck.app.assembly import build_gateway
        from lmdeck.app.factory import create_app
        from lmdeck.app.heap import freeze_startup_heap
        from lmdeck.console import install_console
        from lmdeck.db.lease import leader_lease
        from lmdeck.tracing.spool_dirs import worker_spool_dir

        mine = sockets[index]
        for other in sockets:
            if other is not mine:
                other.close()
        os.environ.update(secrets)
        try:
            gateway = build_gateway(
                settings,
                spool_dir=worker_spool_dir(settings.spool_dir, index),
                lease=leader_lease(settings.store_url, settings.data_dir),
                # What the last run left unfinished is resumed once, by the first worker; a restarted
                # worker leaves it alone, since the others may be running it.
                recover=index == 0 and restarts == 0,
            )
            app = create_app(settings, gateway=gateway)
            install_console(app, settings)
        except ConfigError as exc:
            typer.echo(f"lmdeck cannot start: {exc}", err=True)
            raise SystemExit(2) from None
        finally:
            forget_own_secrets()
        # What start-up built lives as long as the process: the collector need not walk it again.
        freeze_startup_heap()
        ready()
        uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings))).run(sockets=[mine])

    return work


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` workers until SIGTERM or SIGINT; the exit code."""
    from lmdeck.db import Database
    from lmdeck.db.lease_file import FileLease
    from lmdeck.tracing.spool import LOCK_NAME
    from lmdeck.tracing.spool_dirs import orphan_spools, replay_leftovers

    db = Database(settings.store_url)
    try:
        applied = db.migrate()
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        replay_leftovers(settings, db, orphan_spools(settings.spool_dir, workers=settings.workers))
    finally:
        db.dispose()
    # Held for the parent's life (and its workers', which inherit it): a second lmdeck serve on this
    # data directory is refused, naming this pid.
    settings.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir_lock = FileLease(settings.spool_dir / LOCK_NAME)
    if not data_dir_lock.try_acquire():
        typer.echo(f"error: another lmdeck (pid {data_dir_lock.holder()}) is serving {settings.data_dir}", err=True)
        return 1
    try:
        sockets = reuseport_sockets(settings.host, settings.port, count=settings.workers)
    except OSError as exc:
        typer.echo(f"lmdeck cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", err=True)
        return 1
    port = sockets[0].getsockname()[1]
    log.warning(per_worker_limits_notice(settings.workers, shared=settings.redis.url is not None))
    # Workers started later (a restart) find the admin and master keys here, not in the environment.
    secrets = {name: os.environ.pop(name) for name in OWN_SECRETS if name in os.environ}

    def close_sockets() -> None:
        for sock in sockets:
            sock.close()

    pool = WorkerPool(
        settings.workers,
        _worker(settings, sockets, secrets),
        on_ready=lambda: announce(settings, port),
        on_stop=close_sockets,
    )
    try:
        return pool.run()
    finally:
        data_dir_lock.release()
