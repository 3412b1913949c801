"""What a LoRA adapter directory must hold, and who may point at one (importable without PyTorch).

An adapter is a directory in PEFT's format: ``adapter_config.json`` (a LoRA config) and
``adapter_model.safetensors`` (its weights), as ``save_pretrained`` writes them. It is named
by its path; the resolved path (symlinks followed) is its identity::

    path = check_adapter_dir("/srv/lmdeck/finetune/jobs/ft-1/adapter")   # Path, or AdapterError
    within(path, Path("/srv/lmdeck/finetune"))                           # True
"""

from __future__ import annotations

import json
from pathlib import Path

from lmdeck.local.errors import AdapterError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def resolve_adapter_path(adapter: str | Path) -> Path:
    """The absolute path ``adapter`` names, symlinks followed (whether or not it exists)."""
    return Path(adapter).expanduser().resolve()


def within(path: Path, root: Path) -> bool:
    """Whether resolved ``path`` is ``root`` (resolved too) or lies under it."""
    return path.is_relative_to(root.resolve())


def check_adapter_dir(adapter: str | Path) -> Path:
    """The resolved directory of a PEFT LoRA adapter; raises :class:`AdapterError` naming what is wrong."""
    path = resolve_adapter_path(adapter)
    if not path.is_dir():
        raise AdapterError(
            f"adapter {str(adapter)!r}: no such directory; point `adapter` at a directory holding "
            f"{CONFIG_FILE} and {WEIGHTS_FILE} (what PEFT's save_pretrained writes)"
        )
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        raise AdapterError(
            f"adapter {str(adapter)!r}: {' and '.join(missing)} missing in {path}; save the adapter with "
            "PEFT's save_pretrained (safetensors format)"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"adapter {str(adapter)!r}: {CONFIG_FILE} is not readable JSON ({exc})") from None
    kind = config.get("peft_type") if isinstance(config, dict) else None
    if kind != "LORA":
        raise AdapterError(
            f"adapter {str(adapter)!r}: {CONFIG_FILE} says peft_type={kind!r}; the local engine serves LoRA adapters only"
        )
    return path
