"""The demo model's tokenizer: one token per character, plus the chat template's specials.

Character tokens keep the string skills (reverse, count letters) learnable by a
model this small; the tokenizer is built with the ``tokenizers`` library and saved
as an ordinary ``tokenizer.json``::

    >>> tok = build_tokenizer()
    >>> tok.encode("<|user|>hi").tokens
    ['<|user|>', 'h', 'i']
"""

from __future__ import annotations

import string

from tokenizers import AddedToken, Tokenizer, decoders, models

from lmdeck.local.chat_template import SPECIAL_TOKENS, UNKNOWN

ALPHABET = string.printable.replace("\x0b", "").replace("\x0c", "").replace("\r", "")


def build_tokenizer() -> Tokenizer:
    """A character-level tokenizer over printable ASCII with the special tokens first."""
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *ALPHABET):
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNKNOWN))
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.decoder = decoders.Fuse()
    return tokenizer
