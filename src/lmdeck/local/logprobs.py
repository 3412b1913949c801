"""Log-probabilities of tokens, as OpenAI's ``logprobs`` report them.

A log-probability here is the log-softmax of the logits the model produced for that position: the
very tensor the sampler draws from, taken *before* temperature and top-p reshape it. That is the
model's own distribution, which is what OpenAI reports and what vLLM reports by default; it does not
change with the request's temperature, so a confidence threshold learned on greedy requests holds for
sampled ones, and a greedy request (temperature 0, where the sampled distribution would be a single
certain token) still says how sure the model was::

    rows = position_logprobs(logits, chosen=[17, 4], top=[3, None])   # [TokenLogprob(...), None]
    prompt = prompt_logprobs(full_logits[0], prompt_ids, start=0, top=2)   # None for the first token

:class:`TokenText` names tokens the way the wire shapes need: their text and their UTF-8 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from tokenizers import Tokenizer, decoders


@dataclass(frozen=True)
class TokenLogprob:
    """One position: the token there, its log-probability and the ``top`` alternatives, most likely first.

    ``offset`` is the character offset of the token's text in the generated text (0 for prompt tokens,
    whose offsets come from the tokenizer).
    """

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()
    offset: int = 0


def _rows(logprobs: torch.Tensor, chosen: Sequence[int], top: Sequence[int]) -> list[TokenLogprob]:
    """``logprobs``: ``[n, vocab]`` log-probabilities; one entry per row for ``chosen[i]`` with ``top[i]`` alternatives."""
    k = max(top, default=0)
    picked = logprobs.gather(1, torch.tensor(list(chosen), device=logprobs.device)[:, None])[:, 0].tolist()
    if k:
        values, ids = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
        values_list, ids_list = values.tolist(), ids.tolist()
    out = []
    for i, token in enumerate(chosen):
        alternatives = tuple(zip(ids_list[i][: top[i]], values_list[i][: top[i]], strict=True)) if k else ()
        out.append(TokenLogprob(int(token), float(picked[i]), alternatives))
    return out


def position_logprobs(
    logits: torch.Tensor, chosen: Sequence[int], top: Sequence[int | None]
) -> list[TokenLogprob | None]:
    """Entries for the rows of ``logits`` (``[rows, vocab]``) whose ``top`` is not None; None for the others."""
    wanted = [i for i, k in enumerate(top) if k is not None]
    out: list[TokenLogprob | None] = [None] * len(top)
    if not wanted:
        return out
    index = torch.tensor(wanted, device=logits.device)
    logprobs = torch.log_softmax(logits.index_select(0, index).float(), dim=-1)
    rows = _rows(logprobs, [chosen[i] for i in wanted], [int(top[i] or 0) for i in wanted])
    for i, row in zip(wanted, rows, strict=True):
        out[i] = row
    return out


def prompt_logprobs(logits: torch.Tensor, prompt: Sequence[int], start: int, top: int) -> list[TokenLogprob | None]:
    """Every prompt token's entry from one row's prefill logits (``[width, vocab]``, prompt from column ``start``).

    The first token has no entry (None): nothing came before it to predict it.
    """
    if len(prompt) < 2:
        return [None] * len(prompt)
    # The logits at column c predict the token at column c + 1.
    predicting = logits[start : start + len(prompt) - 1].float()
    rows = _rows(torch.log_softmax(predicting, dim=-1), list(prompt[1:]), [top] * (len(prompt) - 1))
    return [None, *rows]


_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character standing for each byte, reversed."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class TokenText:
    """A token's text and UTF-8 bytes, for byte-level BPE, byte-fallback and plain vocabularies alike.

    A token that holds part of a multi-byte character has no text of its own; like OpenAI, its text is
    then written ``bytes:\\xe2\\x80`` and its ``bytes`` carry the real bytes.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_level = isinstance(tokenizer.decoder, decoders.ByteLevel)
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def _bytes(self, token_id: int) -> bytes:
        piece = self.tokenizer.id_to_token(token_id) or ""
        if self.byte_level:
            alphabet = _byte_level_alphabet()
            if all(ch in alphabet for ch in piece):
                return bytes(alphabet[ch] for ch in piece)
        match = _BYTE_TOKEN.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        return str(self.tokenizer.decode([token_id], skip_special_tokens=False)).encode()

    def describe(self, token_id: int) -> tuple[str, list[int]]:
        """``(text, bytes)`` of one token."""
        found = self._cache.get(token_id)
        if found is None:
            raw = self._bytes(token_id)
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                text = "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
            found = self._cache[token_id] = (text, list(raw))
        return found

    def text(self, token_id: int) -> str:
        return self.describe(token_id)[0]
