"""What a resumed stream's client has been sent, and the request that continues it."""

from __future__ import annotations

from typing import Any

from lmdeck.gateway.routing.stream_resume import StreamTranscript
from lmdeck.protocol import ChatCompletionChunk, ChatCompletionRequest
from lmdeck.protocol.chat import Usage


def chunk(
    delta: dict[str, Any], finish: str | None = None, *, id: str = "first", index: int = 0
) -> ChatCompletionChunk:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return ChatCompletionChunk(id=id, created=1, model=f"model-{id}", choices=[choice])


def request(**extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "q"}], **extra})


def sent(transcript: StreamTranscript, *texts: str) -> None:
    transcript.accept(chunk({"role": "assistant", "content": ""}))
    for text in texts:
        transcript.accept(chunk({"content": text}))


def test_the_continuation_carries_the_text_sent_as_the_assistants() -> None:
    transcript = StreamTranscript()
    sent(transcript, "The ", "capital ", "of")
    continued = transcript.continuation(request(max_tokens=10, temperature=0.5))
    assert continued is not None
    assert [m.role for m in continued.messages] == ["user", "assistant"]
    assert continued.messages[-1].content == "The capital of"
    assert continued.max_tokens == 7 and continued.temperature == 0.5
    assert transcript.offset == 3 and transcript.text == "The capital of"


def test_with_nothing_sent_the_continuation_is_the_request_itself() -> None:
    transcript = StreamTranscript()
    sent(transcript)
    body = request()
    assert transcript.continuation(body) is body


def test_what_cannot_be_continued() -> None:
    spent = StreamTranscript()
    sent(spent, "a ", "b")
    assert spent.continuation(request(max_completion_tokens=2)) is None

    tools = StreamTranscript()
    tools.accept(chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}))
    assert tools.continuation(request()) is None and tools.why_not is not None

    two = StreamTranscript()
    two.accept(chunk({"content": "x"}, index=1))
    assert two.continuation(request()) is None

    done = StreamTranscript()
    sent(done, "all")
    done.accept(chunk({}, "stop"))
    assert done.finished and done.continuation(request()) is None

    assert StreamTranscript().continuation(request(n=2)) is None


def test_a_continuations_chunks_join_the_clients_stream() -> None:
    transcript = StreamTranscript()
    sent(transcript, "one ", "two ")
    transcript.cut()
    assert transcript.accept(chunk({"role": "assistant", "content": ""}, id="second"), continuing=True) is None
    out = transcript.accept(chunk({"role": "assistant", "content": "three"}, id="second"), continuing=True)
    assert isinstance(out, ChatCompletionChunk)
    assert (out.id, out.model, out.created) == ("first", "model-first", 1)
    assert out.choices[0]["delta"] == {"content": "three"}
    finish = transcript.accept(chunk({}, "stop", id="second"), continuing=True)
    assert finish is not None and finish.choices[0]["finish_reason"] == "stop"
    assert transcript.text == "one two three" and transcript.finished


def test_the_final_usage_adds_up_every_upstream_call() -> None:
    transcript = StreamTranscript()
    sent(transcript, "one ", "two ")
    assert transcript.cut().pieces == 2
    transcript.accept(chunk({"content": "three"}, id="second"), continuing=True)
    usage = Usage(prompt_tokens=12, completion_tokens=1, total_tokens=13)
    last = ChatCompletionChunk(id="second", created=9, model="other", choices=[], usage=usage)
    merged = transcript.accept(last, continuing=True)
    assert merged is not None and merged.usage is not None
    # The continuation's 12 prompt tokens hold the 10 of the prompt; the cut call used 10 in, 2 out.
    assert (merged.usage.prompt_tokens, merged.usage.completion_tokens, merged.usage.total_tokens) == (22, 3, 25)
