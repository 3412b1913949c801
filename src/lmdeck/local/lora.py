"""Per-row LoRA on a model's linear layers: each row of a batch with its own adapter, or none.

:class:`LoraLayers` replaces each ``nn.Linear`` an adapter adapts with a :class:`RowLoraLinear`
that keeps the base layer and, per adapter slot, that adapter's ``A`` (``[r, in]``) and ``B``
(``[out, r]``, its scaling folded in). For a forward pass the caller names each row's slot
(0: no adapter); the rows with an adapter get ``x·Aᵀ·Bᵀ`` added, computed for all of them at once
with two batched matrix products over the slots' stacked weights (the rows' adapters gathered,
ranks padded with zeros). A pass without adapter rows costs one attribute check per layer::

    layers = LoraLayers(model)
    layers.put(1, read_lora(adapter_dir, model, "demo"))    # slot 1
    with layers.rows([0, 1, 1, 0]):                           # rows 1 and 2 use slot 1
        logits = model(input_ids=..., ...).logits

Why not PEFT's mixed-adapter batches (``adapter_names=``): they register a hook on every LoRA
module for each forward pass and split the batch per adapter in every layer; on a small model that
costs more than the forward pass itself (``bench/adapters.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lmdeck.local.adapter_dir import CONFIG_FILE, WEIGHTS_FILE
from lmdeck.local.errors import AdapterError

_PREFIX = "base_model.model."
_FIX = "train the adapter on this base model (or serve it on the model it was trained on)"
#: LoRA variants whose weights are more than ``A`` and ``B``: refused by name rather than served wrong.
_UNSUPPORTED = {
    "use_dora": "DoRA",
    "lora_bias": "LoRA biases",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D) layers",
}

Weights = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _pattern_value(patterns: dict[str, float], module: str, default: float) -> float:
    """PEFT's ``alpha_pattern``/``rank_pattern`` lookup: a key matches the module name or a dotted suffix of it."""
    for key, value in patterns.items():
        if re.fullmatch(rf"(.*\.)?{key}", module):
            return float(value)
    return default


def read_lora(path: Path, model: nn.Module, model_name: str) -> Weights:
    """``{module name: (A [r, in], B·scaling [out, r])}`` of the LoRA adapter in ``path``, checked against ``model``.

    Raises :class:`AdapterError` naming what does not fit: a module ``model`` lacks or that is not linear,
    weights of the wrong shape, a LoRA variant the engine does not serve, unreadable files.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = json.loads((path / CONFIG_FILE).read_text())
    for field, what in _UNSUPPORTED.items():
        if config.get(field):
            raise AdapterError(f"adapter {str(path)!r} uses {what}, which the local engine does not serve")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise AdapterError(
            f"adapter {str(path)!r} trains biases or whole modules (bias/modules_to_save); "
            "the local engine serves plain LoRA weights only"
        )
    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise AdapterError(f"adapter {str(path)!r}: {WEIGHTS_FILE} is not readable safetensors ({exc})") from None
    alpha = float(config.get("lora_alpha", 8))
    rslora = bool(config.get("use_rslora", False))
    weights: Weights = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            if ".lora_" in key and "lora_B" not in key:
                raise AdapterError(f"adapter {str(path)!r} adapts embeddings or other non-linear layers ({key})")
            continue
        module = key.removeprefix(_PREFIX).removesuffix(".lora_A.weight")
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        try:
            layer = model.get_submodule(module)
        except AttributeError:
            raise AdapterError(
                f"adapter {str(path)!r} adapts {module}, which model {model_name!r} lacks: {_FIX}"
            ) from None
        base = layer.base if isinstance(layer, RowLoraLinear) else layer
        if not isinstance(base, nn.Linear):
            raise AdapterError(
                f"adapter {str(path)!r} adapts {module}, a {type(base).__name__} in model {model_name!r}; "
                "adapters serve linear layers of an unquantized model"
            )
        rank = a.shape[0]
        if (
            b is None
            or a.dim() != 2
            or b.dim() != 2
            or a.shape[1] != base.in_features
            or b.shape != (base.out_features, rank)
        ):
            got = f"A {list(a.shape)}, B {list(b.shape) if b is not None else 'missing'}"
            need = f"A [r, {base.in_features}], B [{base.out_features}, r]"
            raise AdapterError(
                f"adapter {str(path)!r} does not fit model {model_name!r}: {module} has {got}, needs {need}; {_FIX}"
            )
        scale = _pattern_value(config.get("alpha_pattern") or {}, module, alpha)
        scale = scale / math.sqrt(rank) if rslora else scale / rank
        weight = base.weight
        weights[module] = (
            a.to(device=weight.device, dtype=weight.dtype).contiguous(),
            (b * scale).to(device=weight.device, dtype=weight.dtype).contiguous(),
        )
    if not weights:
        raise AdapterError(f"adapter {str(path)!r} holds no LoRA weights (no *.lora_A.weight tensors)")
    return weights


@dataclass(frozen=True)
class _Rows:
    """The adapted rows of the current forward pass: their slots, and which rows they are (None: every row)."""

    slots: torch.Tensor  # [k] slot of each adapted row
    rows: torch.Tensor | None  # [k] their row indices, or None when every row is adapted


class RowLoraLinear(nn.Module):
    """A linear layer plus, for the rows that name one, their adapter's low-rank update."""

    def __init__(self, base: nn.Linear, owner: LoraLayers) -> None:
        super().__init__()
        self.base = base
        self._owner = [owner]  # in a list: not a submodule, not part of the state dict
        self.adapters: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._stack: tuple[torch.Tensor, torch.Tensor] | None = None

    def put(self, slot: int, a: torch.Tensor, b: torch.Tensor) -> None:
        self.adapters[slot] = (a, b)
        self._stack = None

    def drop(self, slot: int) -> None:
        if self.adapters.pop(slot, None) is not None:
            self._stack = None

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every slot's A ``[slots, r_max, in]`` and B ``[slots, out, r_max]`` (zeros where a slot has none)."""
        if self._stack is None:
            slots = max(self.adapters) + 1
            rank = max(a.shape[0] for a, _ in self.adapters.values())
            weight = self.base.weight
            a_all = weight.new_zeros((slots, rank, self.base.in_features))
            b_all = weight.new_zeros((slots, self.base.out_features, rank))
            for slot, (a, b) in self.adapters.items():
                a_all[slot, : a.shape[0]] = a
                b_all[slot, :, : b.shape[1]] = b
            self._stack = (a_all.transpose(1, 2).contiguous(), b_all.transpose(1, 2).contiguous())
        return self._stack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x)
        batch = self._owner[0].current
        if batch is None or not self.adapters:
            return out
        a_t, b_t = self._stacked()  # [slots, in, r], [slots, r, out]
        rows = x if batch.rows is None else x.index_select(0, batch.rows)
        delta = torch.bmm(torch.bmm(rows, a_t[batch.slots]), b_t[batch.slots])
        if batch.rows is None:
            return out.add_(delta)
        return out.index_add_(0, batch.rows, delta)


class LoraLayers:
    """The per-row LoRA layers put into one model: which adapter slot holds what, and the current rows."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers: dict[str, RowLoraLinear] = {}
        self.current: _Rows | None = None

    def _wrap(self, name: str) -> RowLoraLinear:
        parent_name, _, child = name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        base = getattr(parent, child)
        assert isinstance(base, nn.Linear), name
        layer = RowLoraLinear(base, self)
        setattr(parent, child, layer)
        self.layers[name] = layer
        return layer

    def put(self, slot: int, weights: Weights) -> None:
        """Give ``slot`` (1 and up) the adapter ``weights`` (from :func:`read_lora`), replacing what it held."""
        if slot < 1:
            raise ValueError("slot 0 means no adapter")
        self.drop(slot)
        for name, (a, b) in weights.items():
            (self.layers.get(name) or self._wrap(name)).put(slot, a, b)

    def drop(self, slot: int) -> None:
        for layer in self.layers.values():
            layer.drop(slot)

    @contextmanager
    def rows(self, slots: Sequence[int]) -> Iterator[None]:
        """Inside the block, row ``i`` of a forward pass uses the adapter in ``slots[i]`` (0: none)."""
        adapted = [i for i, slot in enumerate(slots) if slot]
        if not adapted:
            yield
            return
        device = next(iter(self.layers.values())).base.weight.device
        chosen = torch.tensor([slots[i] for i in adapted], dtype=torch.long, device=device)
        every = len(adapted) == len(slots)
        self.current = _Rows(chosen, None if every else torch.tensor(adapted, dtype=torch.long, device=device))
        try:
            yield
        finally:
            self.current = None
