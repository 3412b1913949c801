"""Which LoRA adapter directories a model version may name.

A local model version can serve its base model with an adapter read from the server's disk
(``adapter: DIR``, or ``options: {adapter: DIR}``). Pointing at a directory is reading the
server's files, so a version an admin wrote may name any directory, and any other writer only
directories under ``<data_dir>/finetune/``, where lmdeck's own training jobs write their adapters.
Paths are compared resolved, symlinks followed, so neither ``..`` nor a symlink leads out; serving
checks again, since a symlink can appear after the write::

    paths = AdapterPaths(settings.data_dir)
    paths.check_write(spec, admin=False, field="")       # APIError 403 for /etc/..., 400 for a non-string
    paths.check_serve(spec, admin=False, created_by="key:key_dev")   # the adapter to serve, or ConfigError
"""

from __future__ import annotations

from pathlib import Path

from lmdeck.local.adapter_dir import resolve_adapter_path, within
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.settings import ConfigError

#: Where lmdeck writes adapters, under ``data_dir``.
FINETUNE_DIR = "finetune"


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
    """The rule: admins name any adapter directory, others only those under ``<data_dir>/finetune/``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = (Path(data_dir) / FINETUNE_DIR).resolve()

    def allowed(self, adapter: str) -> bool:
        """Whether a non-admin may name ``adapter`` (its resolved path lies under the finetune directory)."""
        return within(resolve_adapter_path(adapter), self.root)

    def check_write(self, spec: ModelVersionSpec, *, admin: bool, field: str = "") -> None:
        """Refuse an adapter that is not a path string (400), or outside the finetune directory for a non-admin (403)."""
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
