"""Which LoRA adapter directories a model version may name.

A local model version can serve its base model with an adapter read from the server's disk
(``adapter: DIR``, or ``options: {adapter: DIR}``). Pointing at a directory is reading the
server's files, so a version an admin wrote may name any directory, and any other writer only
the directory of a fine-tuning job its team owns, ``<data_dir>/finetune/jobs/<job id>/...``, where
lmdeck's own training jobs write their adapters (a key without a team: the jobs it created itself).
Paths are compared resolved, symlinks followed, so neither ``..`` nor a symlink leads out; serving
checks again, since a symlink can appear after the write::

    paths = AdapterPaths(settings.data_dir, jobs)        # jobs: who owns a job id (JobOwners)
    paths.check_write(spec, admin=False, team_id="team_1", key_id="key_dev")   # APIError 403 for /etc/...
    #   or for another team's job's adapter, 400 for a non-string
    paths.check_serve(spec, admin=False, created_by="key:key_dev")   # the adapter to serve, or ConfigError
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lmdeck.local.adapter_dir import resolve_adapter_path, within
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.settings import ConfigError

#: Where lmdeck writes adapters, under ``data_dir``.
FINETUNE_DIR = "finetune"
#: Where each fine-tuning job has its directory, under the finetune directory.
JOBS_DIR = "jobs"


class JobOwners(Protocol):
    """Who owns a fine-tuning job (:class:`lmdeck.finetune.jobs.store.JobStore`)."""

    def owner_of_job(self, job_id: str) -> tuple[str | None, str | None] | None:
        """(team id, key id) of the job's creator, or None when there is no such job (blocking: a DB read)."""
        ...


class NoJobs:
    """No fine-tuning jobs (a gateway without the fine-tuning service): no job directory is anyone's."""

    def owner_of_job(self, job_id: str) -> tuple[str | None, str | None] | None:
        return None


def _owns(owner: tuple[str | None, str | None], team_id: str | None, key_id: str | None) -> bool:
    # The jobs API's visibility rule: a team's jobs for a key of that team, a key's own for a key without one.
    if team_id is not None:
        return owner[0] == team_id
    return owner[0] is None and key_id is not None and owner[1] == key_id


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def named_adapters(spec: ModelVersionSpec) -> list[tuple[str, object]]:
    """Every (field, value) of ``spec`` that names an adapter: ``adapter`` and ``options.adapter``."""
    found: list[tuple[str, object]] = []
    if spec.adapter is not None:
        found.append(("adapter", spec.adapter))
    if "adapter" in spec.options:
        found.append(("options.adapter", spec.options["adapter"]))
    return found


class AdapterPaths:
    """The rule: admins name any adapter directory, others only those of their team's fine-tuning jobs."""

    def __init__(self, data_dir: Path, jobs: JobOwners | None = None) -> None:
        self.root = (Path(data_dir) / FINETUNE_DIR).resolve()
        self.jobs: JobOwners = jobs or NoJobs()

    def bind_jobs(self, jobs: JobOwners) -> None:
        """Look job owners up in ``jobs`` (the fine-tuning service is built after the policy services)."""
        self.jobs = jobs

    def allowed(self, adapter: str) -> bool:
        """Whether a non-admin may name ``adapter`` at all (its resolved path lies under the finetune directory)."""
        return within(resolve_adapter_path(adapter), self.root)

    def job_of(self, adapter: str) -> str | None:
        """The id of the job whose directory holds ``adapter`` (resolved), or None when it lies in none."""
        path = resolve_adapter_path(adapter)
        if not within(path, self.root):
            return None
        parts = path.relative_to(self.root).parts
        return parts[1] if len(parts) >= 2 and parts[0] == JOBS_DIR else None

    def owned(self, adapter: str, team_id: str | None, key_id: str | None) -> bool:
        """Whether ``adapter`` lies in the directory of a job the caller (``team_id``, ``key_id``) owns."""
        job_id = self.job_of(adapter)
        owner = self.jobs.owner_of_job(job_id) if job_id is not None else None
        return owner is not None and _owns(owner, team_id, key_id)

    def check_write(
        self,
        spec: ModelVersionSpec,
        *,
        admin: bool,
        field: str = "",
        team_id: str | None = None,
        key_id: str | None = None,
    ) -> None:
        """Refuse an adapter that is not a path string (400); for a non-admin (``team_id``, ``key_id``), one
        outside the finetune directory, or in it but not in the directory of a job of the caller's team (403).
        Blocking (a DB read per job named)."""
        for name, value in named_adapters(spec):
            where = _join(field, name)
            if not isinstance(value, str) or not value.strip():
                raise APIError(
                    400,
                    f"{where}: must be the path of a LoRA adapter directory (adapter_config.json + "
                    "adapter_model.safetensors)",
                    param=where,
                    code="invalid_value",
                )
            if not admin and not self.allowed(value):
                raise APIError(
                    403,
                    f"{where}: {value!r} is outside {self.root}; only an admin may name adapters elsewhere. "
                    "Register the adapter a fine-tuning job wrote (under <data_dir>/finetune/), or ask an admin",
                    param=where,
                    code="adapter_path_forbidden",
                )
            if not admin and not self.owned(value, team_id, key_id):
                job_id = self.job_of(value)
                raise APIError(
                    403,
                    f"{where}: {value!r} is not the directory of a fine-tuning job of your team"
                    + (f" (job {job_id!r} is another team's, or does not exist)" if job_id else "")
                    + "; register an adapter one of your team's jobs wrote, or ask an admin",
                    param=where,
                    code="adapter_path_forbidden",
                )

    def check_serve(self, spec: ModelVersionSpec, *, admin: bool, created_by: str | None) -> str | None:
        """The adapter a stored version is served with (None: none); :class:`ConfigError` when its writer may
        not name it (not an admin, and the path resolves outside the finetune directory now)."""
        adapter: str | None = None
        for name, value in named_adapters(spec):
            if not isinstance(value, str) or (not admin and not self.allowed(value)):
                raise ConfigError(
                    f"its {name} {value!r} lies outside {self.root} and it was written by "
                    f"{created_by or 'an unknown key'}, which is not an admin: register it again with an adapter "
                    "a fine-tuning job wrote, or have an admin register it"
                )
            if name == "adapter" or adapter is None:
                adapter = value
        return adapter
