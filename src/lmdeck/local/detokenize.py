"""Turning generated token ids into streamed text, and stopping at stop sequences.

Text is released only once it is final: a token that ends inside a multi-byte
character is held until the character is complete, and text that could be the start
of a stop sequence is held until it is known not to be one::

    stream = TextStream(tokenizer, stop=("\\n\\n",))
    stream.push(token_id)     # -> ("new text", stopped)
    stream.flush()            # the held-back text once generation ends for another reason
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str: ...


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could begin a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class TextStream:
    """Incremental detokenization of one sequence, with stop-sequence handling."""

    def __init__(self, tokenizer: Decoder, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stop if s]
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0
        self.pending = ""
        self.text = ""
        self.decoded = 0  # characters decoded so far, stop sequences included: where the next token's text starts

    def _new_text(self) -> str:
        # Decoding a short window around the new token is exact for byte-level and
        # character tokenizers alike, and avoids re-decoding the whole sequence.
        before = self.tokenizer.decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return after[len(before) :]
        return ""

    def push(self, token_id: int) -> tuple[str, bool]:
        """Add one token; returns the text now final and whether a stop sequence was reached."""
        self.ids.append(token_id)
        new = self._new_text()
        self.decoded += len(new)
        self.pending += new
        if not self.stops:
            out, self.pending = self.pending, ""
            self.text += out
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            self.text += out
            return out, True
        keep = _held_back(self.pending, self.stops)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        self.text += out
        return out, False

    def flush(self) -> str:
        """The held-back text, released because generation ended without a stop sequence."""
        out, self.pending = self.pending, ""
        self.text += out
        return out
