"""LoRA adapters served on one base model at once, chosen per row of a batch.

:class:`AdapterSlots` loads LoRA adapters (PEFT's format) onto a
:class:`~lmdeck.local.model.LocalCausalLM` on first use, keeps at most ``capacity`` of them and
evicts the least recently used one that no running row needs. The model's linear layers get their
per-row LoRA (:mod:`lmdeck.local.lora`) only when the first adapter loads: until then a base-only
engine runs exactly the model it loaded. Each row of a prefill or decode step names its adapter's
slot (0: none), so rows with different adapters, or none, share one step. Only the engine thread
calls it::

    slots = AdapterSlots(lm, capacity=8)
    slots.acquire("/srv/lmdeck/finetune/jobs/ft-1/adapter", busy=set())   # True: loaded (or already)
    lm.decode(kv, tokens, positions, adapters=slots.slots([path, None]))   # [1, 0]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from lmdeck.local.adapter_dir import check_adapter_dir
from lmdeck.local.lora import LoraLayers, read_lora
from lmdeck.local.model import LocalCausalLM


class AdapterSlots:
    """The adapters loaded on ``lm``, keyed by resolved path, least recently used first (one per model: its engine's)."""

    def __init__(self, lm: LocalCausalLM, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.lm = lm
        self.capacity = capacity
        self._loaded: OrderedDict[str, int] = OrderedDict()  # resolved path -> slot (1..capacity)
        self.loads = 0
        self.evictions = 0

    def __contains__(self, path: object) -> bool:
        return path in self._loaded

    def loaded(self) -> list[str]:
        """Paths of the loaded adapters, least recently used first."""
        return list(self._loaded)

    def acquire(self, path: str, busy: set[str]) -> bool:
        """Make ``path`` loaded and most recently used; False when all slots hold adapters in ``busy``.

        Raises :class:`~lmdeck.local.errors.AdapterError` when the directory is not a LoRA adapter that
        fits the model (the model is left as it was).
        """
        if path in self._loaded:
            self._loaded.move_to_end(path)
            return True
        if len(self._loaded) >= self.capacity and not any(p not in busy for p in self._loaded):
            return False
        weights = read_lora(check_adapter_dir(path), self.lm.model, self.lm.name)
        if len(self._loaded) >= self.capacity:
            victim = next(p for p in self._loaded if p not in busy)
            self._evict(victim)
        slot = min(set(range(1, self.capacity + 1)) - set(self._loaded.values()))
        if self.lm.lora is None:
            self.lm.lora = LoraLayers(self.lm.model)
        self.lm.lora.put(slot, weights)
        self._loaded[path] = slot
        self.loads += 1
        return True

    def slots(self, rows: Sequence[str | None]) -> list[int] | None:
        """Each row's adapter slot (0: none); None while no adapter was ever loaded."""
        if self.lm.lora is None:
            return None
        return [self._loaded[p] if p is not None else 0 for p in rows]

    def _evict(self, path: str) -> None:
        slot = self._loaded.pop(path)
        if self.lm.lora is not None:
            self.lm.lora.drop(slot)
        self.evictions += 1
