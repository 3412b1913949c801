"""The local engine's log-probabilities in OpenAI's two wire shapes.

Chat completions (``logprobs: true``, ``top_logprobs: k``) get one entry per generated token::

    {"content": [{"token": "Par", "logprob": -0.01, "bytes": [80, 97, 114],
                  "top_logprobs": [{"token": "Par", "logprob": -0.01, "bytes": [...]}, ...]}], "refusal": null}

Legacy completions (``logprobs: k``, and ``echo: true`` for the prompt's own tokens) get parallel lists::

    {"tokens": ["P", "a"], "token_logprobs": [null, -0.3], "top_logprobs": [null, {"a": -0.3, "e": -1.9}],
     "text_offset": [0, 1]}

``text_offset`` counts characters from the start of the prompt, as OpenAI does: the generated text's
tokens start at ``len(prompt)`` whether or not the prompt is echoed. The first prompt token has no
log-probability (nothing predicts it): ``null``, as in OpenAI's answers. A legacy ``top_logprobs``
holds the ``k`` most likely tokens plus the chosen one when it is not among them; a chat entry's
``top_logprobs`` holds exactly ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmdeck.local.logprobs import TokenLogprob, TokenText


def _alternative(names: TokenText, token_id: int, logprob: float) -> dict[str, Any]:
    text, raw = names.describe(token_id)
    return {"token": text, "logprob": logprob, "bytes": raw}


def chat_logprobs(entries: Sequence[TokenLogprob], names: TokenText) -> dict[str, Any]:
    """``choices[].logprobs`` of a chat completion (or of one chunk) for these generated tokens."""
    content = []
    for entry in entries:
        item = _alternative(names, entry.token_id, entry.logprob)
        item["top_logprobs"] = [_alternative(names, t, lp) for t, lp in entry.top]
        content.append(item)
    return {"content": content, "refusal": None}


def completion_logprobs(
    tokens: Sequence[tuple[int, TokenLogprob | None, int]], names: TokenText, top: int
) -> dict[str, Any]:
    """``choices[].logprobs`` of a legacy completion: ``tokens`` are ``(token id, entry or None, text offset)``."""
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for token_id, entry, offset in tokens:
        out["tokens"].append(names.text(token_id))
        out["text_offset"].append(offset)
        if entry is None:
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
            continue
        out["token_logprobs"].append(entry.logprob)
        alternatives = {names.text(t): lp for t, lp in entry.top[:top]}
        alternatives.setdefault(names.text(entry.token_id), entry.logprob)
        out["top_logprobs"].append(alternatives)
    return out


def generated_tokens(entries: Sequence[TokenLogprob], prompt_chars: int) -> list[tuple[int, TokenLogprob | None, int]]:
    """Generated tokens' entries as :func:`completion_logprobs` takes them, offsets counted from the prompt's start."""
    return [(e.token_id, e, prompt_chars + e.offset) for e in entries]
