"""The pipeline a config gives, shown without serving it (``lmdeck config check --pipeline``).

    for phase, step in pipeline_layout(settings):    # [("edge", "stream_usage"), ("identify", ...), ...]
        print(phase, step)

The order comes from the very code that serves: :func:`~lmdeck.app.assembly.build_gateway`,
run on a copy of the settings whose data directory is a throwaway one (with its own SQLite
store, so a configured ``database_url`` is never touched, and no OTLP export). The gateway
is never started, so no background service runs, and it is closed before the directory
is removed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio
from cryptography.fernet import Fernet

from lmdeck.app.assembly import build_gateway
from lmdeck.policy.secrets import MASTER_KEY_FILE
from lmdeck.settings import Settings


def pipeline_layout(settings: Settings) -> list[tuple[str, str]]:
    """``(phase, step name)`` for each step, outermost first, as a gateway built from ``settings`` runs them.

    Raises what :func:`build_gateway` raises for a config it cannot serve (``ConfigError``).
    """
    with tempfile.TemporaryDirectory(prefix="lmdeck-pipeline-") as tmp:
        data_dir = Path(tmp)
        # A master key of its own: otherwise the throwaway store announces one it generated.
        fd = os.open(data_dir / MASTER_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key_file:
            key_file.write(Fernet.generate_key())
        throwaway = settings.model_copy(
            update={"data_dir": data_dir, "database_url": None, "otlp_endpoint": None, "master_key": None},
            deep=True,
        )
        gateway = build_gateway(throwaway, announce_admin_key=False)
        try:
            return gateway.pipeline.layout
        finally:
            anyio.run(gateway.stop)
