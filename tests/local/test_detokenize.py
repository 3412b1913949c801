from __future__ import annotations

from lmdeck.local.detokenize import TextStream
from lmdeck.local.vocab import build_tokenizer

TOKENIZER = build_tokenizer()


def feed(stream: TextStream, text: str) -> tuple[list[str], bool]:
    out: list[str] = []
    for token in TOKENIZER.encode(text).ids:
        piece, stopped = stream.push(token)
        out.append(piece)
        if stopped:
            return out, True
    return out, False


def test_text_streams_one_piece_per_token_without_stops() -> None:
    stream = TextStream(TOKENIZER)
    pieces, stopped = feed(stream, "hello")
    assert pieces == ["h", "e", "l", "l", "o"]
    assert not stopped
    assert stream.text == "hello"


def test_stop_sequence_ends_text_before_it() -> None:
    stream = TextStream(TOKENIZER, stop=("END",))
    pieces, stopped = feed(stream, "abcENDxyz")
    assert stopped
    assert "".join(pieces) == "abc"


def test_possible_stop_prefix_is_held_back_then_released() -> None:
    stream = TextStream(TOKENIZER, stop=("\n\n",))
    pieces, stopped = feed(stream, "a\nb")
    assert not stopped
    # "\n" could begin the stop sequence: it is released only once "b" shows it does not.
    assert pieces == ["a", "", "\nb"]


def test_flush_releases_held_text_at_the_end() -> None:
    stream = TextStream(TOKENIZER, stop=("xyz",))
    pieces, _ = feed(stream, "abxy")
    assert "".join(pieces) == "ab"
    assert stream.flush() == "xy"
    assert stream.text == "abxy"


def test_special_tokens_produce_no_text() -> None:
    stream = TextStream(TOKENIZER)
    ids = TOKENIZER.encode("<|user|>hi").ids
    assert [stream.push(i)[0] for i in ids] == ["", "h", "i"]
