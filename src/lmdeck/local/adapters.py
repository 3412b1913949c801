"""LoRA adapters served on one base model at once, chosen per row of a batch.

:class:`AdapterSlots` loads PEFT adapters onto a :class:`~lmdeck.local.model.LocalCausalLM` on first
use, keeps at most ``capacity`` of them and evicts the least recently used one that no running row
needs. The model is wrapped (``PeftModel``) only when the first adapter loads: until then a base-only
engine runs exactly the model it loaded. Once wrapped, every forward pass names each row's adapter
(PEFT's mixed-adapter batches, ``adapter_names=[...]``, :data:`BASE` for none), so rows with different
adapters, or none, share one prefill or decode step. Only the engine thread calls it::

    slots = AdapterSlots(lm, capacity=8)
    slots.acquire("/srv/lmdeck/finetune/jobs/ft-1/adapter", busy=set())   # True: loaded (or already)
    lm.decode(kv, tokens, positions, adapters=slots.names([path, None]))   # ["adapter_1", "__base__"]
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lmdeck.local.adapter_dir import CONFIG_FILE, WEIGHTS_FILE, check_adapter_dir
from lmdeck.local.errors import AdapterError
from lmdeck.local.model import LocalCausalLM

#: The name PEFT gives a row that runs without an adapter.
BASE = "__base__"
_PREFIX = "base_model.model."


def _expected_shapes(module: nn.Module, part: str) -> tuple[int | None, int | None] | None:
    """(rows, columns) a LoRA weight ``part`` (``lora_A``...) of ``module`` must have (None: any); None if unknown."""
    if isinstance(module, nn.Linear):
        return {"lora_A": (None, module.in_features), "lora_B": (module.out_features, None)}.get(part)
    if isinstance(module, nn.Embedding):
        shapes = {"lora_embedding_A": (None, module.num_embeddings), "lora_embedding_B": (module.embedding_dim, None)}
        return shapes.get(part)
    return None


def check_fits(model: nn.Module, path: Path, model_name: str) -> None:
    """Raise :class:`AdapterError` unless every LoRA weight in ``path`` fits the module of ``model`` it adapts.

    Read from the safetensors header only (no weights are loaded), before the model is touched.
    """
    from safetensors import safe_open

    config = json.loads((path / CONFIG_FILE).read_text())
    # Per-module ranks (``rank_pattern``) vary: then only the model's side of each weight is checked.
    rank = 0 if config.get("rank_pattern") else int(config.get("r", 0) or 0)
    fix = "train the adapter on this base model (or serve it on the model it was trained on)"
    try:
        handle = safe_open(str(path / WEIGHTS_FILE), framework="pt")
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise AdapterError(f"adapter {str(path)!r}: {WEIGHTS_FILE} is not readable safetensors ({exc})") from None
    with handle as weights:
        for key in weights.keys():  # noqa: SIM118 (a safetensors handle is not iterable)
            parts = key.removeprefix(_PREFIX).split(".")
            lora = next((i for i, p in enumerate(parts) if p.startswith("lora_")), None)
            if lora is None:
                continue
            where, part = ".".join(parts[:lora]), parts[lora]
            try:
                module = model.get_submodule(where)
            except AttributeError:
                raise AdapterError(
                    f"adapter {str(path)!r} adapts {where}, which model {model_name!r} does not have: {fix}"
                ) from None
            shape = tuple(weights.get_slice(key).get_shape())
            expected = _expected_shapes(getattr(module, "base_layer", module), part)
            if expected is None or len(shape) != 2:
                continue
            rows, columns = expected
            if rank and part.endswith("A"):
                rows = rank
            elif rank:
                columns = rank
            if (rows is not None and shape[0] != rows) or (columns is not None and shape[1] != columns):
                raise AdapterError(
                    f"adapter {str(path)!r} does not fit model {model_name!r}: {key} is {list(shape)} but "
                    f"{where} needs [{rows or 'r'}, {columns or 'r'}]; {fix}"
                )


class AdapterSlots:
    """The adapters loaded on ``lm``, keyed by resolved path, least recently used first."""

    def __init__(self, lm: LocalCausalLM, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.lm = lm
        self.capacity = capacity
        self._loaded: OrderedDict[str, str] = OrderedDict()  # resolved path -> PEFT adapter name
        self._made = 0
        self.loads = 0
        self.evictions = 0

    def __contains__(self, path: object) -> bool:
        return path in self._loaded

    def loaded(self) -> list[str]:
        """Paths of the loaded adapters, least recently used first."""
        return list(self._loaded)

    def acquire(self, path: str, busy: set[str]) -> bool:
        """Make ``path`` loaded and most recently used; False when all slots hold adapters in ``busy``.

        Raises :class:`AdapterError` when the directory is not a LoRA adapter that fits the model.
        """
        if path in self._loaded:
            self._loaded.move_to_end(path)
            return True
        if len(self._loaded) >= self.capacity:
            victim = next((p for p in self._loaded if p not in busy), None)
            if victim is None:
                return False
            self._evict(victim)
        self._load(path)
        return True

    def names(self, rows: Sequence[str | None]) -> list[str] | None:
        """Each row's PEFT adapter name (:data:`BASE` for none); None while the model was never wrapped."""
        if self.lm.peft is None:
            return None
        return [self._loaded[p] if p is not None else BASE for p in rows]

    def _load(self, path: str) -> None:
        directory = check_adapter_dir(path)
        check_fits(self.lm.model, directory, self.lm.name)
        self._made += 1
        name = f"adapter_{self._made}"
        from peft import PeftModel

        # Outside inference mode: the adapter's parameters are ordinary tensors that later steps only read.
        with torch.inference_mode(False), torch.no_grad():
            try:
                if self.lm.peft is None:
                    peft = PeftModel.from_pretrained(self.lm.model, str(directory), adapter_name=name)
                    peft.eval()
                    self.lm.peft = peft
                else:
                    self.lm.peft.load_adapter(str(directory), adapter_name=name)
                # Every call names each row's adapter; the active one only has to be one that exists.
                self.lm.peft.set_adapter(name)
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                if self.lm.peft is not None and name in self.lm.peft.peft_config:
                    self.lm.peft.delete_adapter(name)
                raise AdapterError(f"adapter {path!r} could not be loaded on model {self.lm.name!r}: {exc}") from exc
        self._loaded[path] = name
        self.loads += 1

    def _evict(self, path: str) -> None:
        name = self._loaded.pop(path)
        assert self.lm.peft is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "adapter_1 was active which is now deleted"
            self.lm.peft.delete_adapter(name)
        self.evictions += 1
