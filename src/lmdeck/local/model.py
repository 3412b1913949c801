"""A causal LM as the engine sees it: prefill some prompts, decode one token for every running row.

:class:`LocalCausalLM` wraps a ``transformers`` model (any decoder whose attention takes a
4-D additive mask, such as ``LlamaForCausalLM`` or ``GPT2LMHeadModel``) with its tokenizer
and chat template. It keeps no per-request state: the engine owns the batch's
:class:`~lmdeck.local.kv_cache.BatchKV` and passes it in::

    lm = load_causal_lm(DEMO_MODEL_DIR, device="cpu")
    logits, cache = lm.prefill([lm.encode("Reverse: abc")])
    kv = lm.new_batch(max_rows=8)
    kv.join(cache, [len(...)])
    logits = lm.decode(kv, tokens=[next_id], positions=[n])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer
from transformers import DynamicCache, PreTrainedModel

from lmdeck.local.chat_template import ChatTemplate
from lmdeck.local.kv_cache import BatchKV, prefill_cache

if TYPE_CHECKING:
    from lmdeck.local.lora import LoraLayers


@dataclass
class LocalCausalLM:
    """A loaded generative model, its tokenizer and how to talk to it."""

    name: str
    model: PreTrainedModel
    tokenizer: Tokenizer
    eos_ids: frozenset[int]
    pad_id: int
    context_length: int
    default_temperature: float = 1.0
    template: ChatTemplate = field(default_factory=ChatTemplate)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    #: The per-row LoRA layers, once an adapter was loaded (:class:`~lmdeck.local.adapters.AdapterSlots`).
    lora: LoraLayers | None = None

    @cached_property
    def _cache_argument(self) -> str:
        """The name ``forward`` takes the cache under: ``cache`` (transformers 5.24 on), else ``past_key_values``.

        Passing ``past_key_values`` where ``cache`` exists is deprecated (removal announced for 5.40); passing
        ``cache`` where it does not exist would be silently ignored, so the signature decides.
        """
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @property
    def _shape(self) -> tuple[int, int, int]:
        config = self.model.config
        heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        return int(config.num_hidden_layers), heads, head_dim

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def decode_text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def new_batch(self, max_rows: int, initial_width: int = 128) -> BatchKV:
        layers, heads, head_dim = self._shape
        return BatchKV(
            layers, heads, head_dim, max_rows, dtype=self.dtype, device=self.device, initial_width=initial_width
        )

    def _forward(self, adapters: Sequence[int] | None, **inputs: Any) -> Any:
        """One forward pass; ``adapters`` gives each row's LoRA adapter slot (0: none), once any is loaded."""
        if self.lora is None or adapters is None:
            return self.model(**inputs)
        with self.lora.rows(adapters):
            return self.model(**inputs)

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        return mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)

    @torch.inference_mode()
    def prefill(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        full_logits: bool = False,
        adapters: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Run left-padded prompts; returns the last position's logits ``[n, vocab]`` and their cache.

        ``adapters`` gives each prompt's LoRA adapter slot (0: none; see :mod:`lmdeck.local.adapters`).

        With ``full_logits`` the logits are every column's, ``[n, width, vocab]`` (prompt ``i`` occupies the
        last ``len(prompts[i])`` columns): what scoring the prompt's own tokens needs.
        """
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        starts = torch.tensor([width - len(p) for p in prompts])
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        columns = torch.arange(width)
        positions = (columns[None, :] - starts[:, None]).clamp(min=0)
        causal = columns[None, :] <= columns[:, None]
        real = columns[None, :] >= starts[:, None]
        # A padding position attends to itself only, so that no row of the mask is empty.
        allowed = (causal[None] & real[:, None, :]) | torch.eye(width, dtype=torch.bool)[None]
        layers, heads, head_dim = self._shape
        cache = prefill_cache(
            layers, len(prompts), heads, head_dim, width, torch.empty((), dtype=self.dtype, device=self.device)
        )
        out = self._forward(
            adapters,
            input_ids=ids.to(self.device),
            position_ids=positions.to(self.device),
            attention_mask=self._mask(allowed.to(self.device))[:, None],
            **{self._cache_argument: cache},
            use_cache=True,
            logits_to_keep=0 if full_logits else 1,
        )
        return (out.logits if full_logits else out.logits[:, -1, :]), cache

    @torch.inference_mode()
    def decode(
        self,
        kv: BatchKV,
        tokens: Sequence[int],
        positions: Sequence[int],
        adapters: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """One step for every running row: feed ``tokens``, return next-token logits ``[rows, vocab]``.

        ``adapters`` gives each row's LoRA adapter slot (0: none; see :mod:`lmdeck.local.adapters`).
        """
        cache = kv.cache()
        out = self._forward(
            adapters,
            input_ids=torch.tensor(list(tokens), dtype=torch.long, device=self.device)[:, None],
            position_ids=torch.tensor(list(positions), dtype=torch.long, device=self.device)[:, None],
            attention_mask=kv.decode_mask(),
            **{self._cache_argument: cache},
            use_cache=True,
        )
        kv.advance()
        return out.logits[:, -1, :]
