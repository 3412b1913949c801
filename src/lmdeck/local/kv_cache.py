"""The running batch's key/value cache, with rows that join and leave between decode steps.

Every row's tokens are right-aligned on a shared column axis: row ``r`` holds real
tokens in columns ``[start[r], width)`` and padding to their left, so one decode step
appends column ``width`` for every row at once. Rows join at the bottom (their prefill
cache copied in, the batch widened on the left when the newcomer is longer) and leave by
swapping the last row into their place, so neither costs more than copying the rows
that move. Leading columns no row uses any more are dropped when the buffer fills::

    kv = BatchKV(layers=4, heads=6, head_dim=32, max_rows=32)
    kv.join(prefill_cache, starts=[3, 0])          # two new rows from one prefill
    out = model(input_ids=..., cache=kv.cache(), attention_mask=kv.decode_mask())
    kv.advance()
    kv.leave(0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class SlotLayer(DynamicLayer):
    """One layer's keys and values in a preallocated buffer; ``update`` writes in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int, width: int) -> None:
        super().__init__()
        self.buffer_k, self.buffer_v = keys, values
        self.rows, self.width = rows, width
        self.is_initialized = True
        self.dtype, self.device = keys.dtype, keys.device
        self.keys = keys[:rows, :, :width]
        self.values = values[:rows, :, :width]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        end = self.width + key_states.shape[-2]
        self.buffer_k[: self.rows, :, self.width : end] = key_states
        self.buffer_v[: self.rows, :, self.width : end] = value_states
        self.width = end
        self.keys = self.buffer_k[: self.rows, :, :end]
        self.values = self.buffer_v[: self.rows, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.width


def prefill_cache(layers: int, rows: int, heads: int, head_dim: int, width: int, like: torch.Tensor) -> DynamicCache:
    """An empty cache for prefilling ``rows`` prompts padded to ``width`` tokens."""
    cache = DynamicCache()
    shape = (rows, heads, width, head_dim)
    cache.layers = [SlotLayer(like.new_empty(shape), like.new_empty(shape), rows, 0) for _ in range(layers)]
    return cache


class BatchKV:
    """Keys and values of every running sequence, one preallocated buffer per layer."""

    def __init__(
        self,
        layers: int,
        heads: int,
        head_dim: int,
        max_rows: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        initial_width: int = 128,
    ) -> None:
        self.n_layers, self.heads, self.head_dim, self.max_rows = layers, heads, head_dim, max_rows
        self.dtype, self.device = dtype, torch.device(device)
        self.capacity = initial_width
        self.keys = [self._alloc(initial_width) for _ in range(layers)]
        self.values = [self._alloc(initial_width) for _ in range(layers)]
        self.rows = 0
        self.width = 0
        self.starts: list[int] = []

    def _alloc(self, width: int) -> torch.Tensor:
        return torch.zeros((self.max_rows, self.heads, width, self.head_dim), dtype=self.dtype, device=self.device)

    def _relayout(self, shift: int, capacity: int) -> None:
        """Move every row's columns by ``shift`` (negative: drop leading columns) into buffers of ``capacity``."""
        new_width = self.width + shift
        src_from, dst_from = max(0, -shift), max(0, shift)
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                new = self._alloc(capacity) if capacity != self.capacity or shift > 0 else old
                new[: self.rows, :, dst_from:new_width] = old[: self.rows, :, src_from : self.width].clone()
                if new is old and shift < 0:
                    new[: self.rows, :, new_width : self.width] = 0
                store[i] = new
        self.capacity = capacity
        self.width = new_width
        self.starts = [s + shift for s in self.starts]

    def _compact(self) -> None:
        """Drop the leading columns that no running row uses any more."""
        unused = min(self.starts, default=0)
        if unused > 0:
            self._relayout(-unused, self.capacity)

    def _fit(self, width: int) -> None:
        """Make room for ``width`` columns, growing the buffers by doubling."""
        if width <= self.capacity:
            return
        capacity = self.capacity
        while capacity < width:
            capacity *= 2
        self._relayout(0, capacity)

    @property
    def free_rows(self) -> int:
        return self.max_rows - self.rows

    def join(self, cache: DynamicCache, lengths: Sequence[int]) -> None:
        """Append the rows of a left-padded prefill ``cache`` whose prompts have ``lengths`` tokens."""
        n = len(lengths)
        if n > self.free_rows:
            raise ValueError(f"{n} rows do not fit: {self.free_rows} free")
        layers = [layer for layer in cache.layers if isinstance(layer, SlotLayer)]
        if len(layers) != self.n_layers:
            raise TypeError("join takes a cache made by prefill_cache()")
        prefill_width = layers[0].width
        if prefill_width > self.width:
            if self.rows == 0:
                self._fit(prefill_width + 1)
                self.width = prefill_width
            else:
                self._compact()
                grow = max(0, prefill_width - self.width)
                self._fit(self.width + grow + 1)
                if grow:
                    self._relayout(grow, self.capacity)
        left = self.width - prefill_width
        for i, layer in enumerate(layers):
            data_k = layer.buffer_k[:n, :, :prefill_width]
            data_v = layer.buffer_v[:n, :, :prefill_width]
            for store, data in ((self.keys, data_k), (self.values, data_v)):
                store[i][self.rows : self.rows + n] = 0
                store[i][self.rows : self.rows + n, :, left : self.width] = data
        self.starts += [self.width - length for length in lengths]
        self.rows += n

    def leave(self, row: int) -> int | None:
        """Remove ``row``; the last row moves into its place. Returns the moved row's old index, if any."""
        last = self.rows - 1
        moved: int | None = None
        if row != last:
            for store in (self.keys, self.values):
                for buf in store:
                    buf[row] = buf[last]
            self.starts[row] = self.starts[last]
            moved = last
        self.starts.pop()
        self.rows -= 1
        if self.rows == 0:
            self.width = 0
        elif min(self.starts) >= max(32, self.width // 2):
            # Attention still spans every column: stop paying for the ones nobody needs.
            self._compact()
        return moved

    def cache(self) -> DynamicCache:
        """A ``transformers`` cache over the running rows for the next forward pass (writes in place)."""
        if self.width + 1 > self.capacity:
            self._compact()
            self._fit(self.width + 1)
        cache = DynamicCache()
        cache.layers = [SlotLayer(k, v, self.rows, self.width) for k, v in zip(self.keys, self.values, strict=True)]
        return cache

    def advance(self, tokens: int = 1) -> None:
        self.width += tokens

    def decode_mask(self, new_tokens: int = 1) -> torch.Tensor:
        """The additive attention mask ``[rows, 1, new_tokens, width + new_tokens]`` for a decode step."""
        columns = torch.arange(self.width + new_tokens, device=self.device)
        starts = torch.tensor(self.starts, device=self.device)
        allowed = columns[None, :] >= starts[:, None]
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)
        return mask[:, None, None, :].expand(-1, 1, new_tokens, -1)
