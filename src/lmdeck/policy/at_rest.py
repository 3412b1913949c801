"""Data at rest is the owner's alone: the data directory 0700, every file in it 0600.

The data directory holds the store (``lmdeck.db`` and its ``-wal``/``-shm`` files: keys'
hashes, traces with their bodies, encrypted secrets), the trace spool, the master key and
any log file. ``lmdeck serve`` sets the umask to 0077 before it creates anything, and
:func:`secure_data_dir` checks what is already there at every start: a mode wider than the
owner's is narrowed (and logged); a path owned by another user, or one whose mode cannot be
changed, stops the start with a message naming the fix::

    restrict_umask()                    # at process start
    fixed = secure_data_dir(settings)   # before the store opens; raises ConfigError
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from lmdeck.settings import ConfigError, Settings

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077


def restrict_umask() -> int:
    """Make every file this process creates owner-only; returns the previous umask."""
    return os.umask(UMASK)


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite file of the store, or None for another database or an in-memory one."""
    url = settings.store_url
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def _fix(path: Path, wanted: int, fixed: list[Path]) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return  # never chmod through a link: its target is not ours to change
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} belongs to uid {info.st_uid}, not to the user running lmdeck (uid {os.geteuid()}): "
            f"`chown -R {os.geteuid()} {path}` or give lmdeck its own LMDECK_DATA_DIR"
        )
    if stat.S_IMODE(info.st_mode) & ~wanted:
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & wanted)
        except OSError as exc:
            raise ConfigError(
                f"{path} is mode {stat.S_IMODE(info.st_mode):04o} and cannot be narrowed to {wanted:04o} "
                f"({exc.strerror}): `chmod {wanted:o} {path}` before starting lmdeck"
            ) from None
        fixed.append(path)


def _create_private(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)


def secure_data_dir(settings: Settings) -> list[Path]:
    """Create the data directory 0700 (or narrow it), narrow every file under it to 0600 and every
    directory to 0700, and create the SQLite store and the log file 0600 so that the store's
    ``-wal``/``-shm`` files, which SQLite creates with the database's mode, are owner-only too.

    Returns the paths whose mode was narrowed. Raises :class:`ConfigError` naming the fix for a
    path owned by another user or one whose mode cannot be changed.
    """
    root = Path(settings.data_dir)
    root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    database = sqlite_path(settings)
    for own_file in (database, settings.log_file):
        if own_file is not None and not own_file.exists():
            own_file.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            _create_private(own_file)
    fixed: list[Path] = []
    _fix(root, DIR_MODE, fixed)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            _fix(Path(folder) / name, DIR_MODE, fixed)
        for name in files:
            _fix(Path(folder) / name, FILE_MODE, fixed)
    outside = [database, settings.log_file]
    if database is not None:
        outside += [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    for path in outside:
        if path is not None and path.exists() and root.resolve() not in path.resolve().parents:
            _fix(path, FILE_MODE, fixed)
    if fixed:
        log.warning(
            "narrowed the permissions of %d path(s) under %s to owner-only (0700 folders, 0600 files): %s",
            len(fixed),
            root,
            ", ".join(str(p) for p in fixed[:10]) + (" ..." if len(fixed) > 10 else ""),
        )
    return fixed
