"""The guardrail steps around an echoing terminal: block, mask and restore, flag, fallback, streams, async mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lmdeck.cache.keys import CACHE_VARY
from lmdeck.guardrails.service import ACTIONS, VERDICTS
from lmdeck.guardrails.steps.input import FALLBACK, MASKED, GuardInput
from lmdeck.pipeline.context import Completed, RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord

from ..guarded import Gate, guarded

DEFINITIONS = {
    "emails": {"type": "emails"},
    "no-swear": {"type": "regex", "options": {"words": ["damn"]}},
    "gate": {"type": "gate"},
    "broken": {"type": "broken"},
    "too-large": {"type": "too_large"},
}


def config(route_guardrails: dict[str, Any], **block: Any) -> dict[str, Any]:
    return {
        "guardrails": {"definitions": DEFINITIONS, **block},
        "routes": [
            {"name": "support", "targets": [{"model": "m"}], "guardrails": route_guardrails},
            {"name": "safe", "targets": [{"model": "m"}]},
        ],
    }


def answer(result: Any) -> str:
    assert isinstance(result, Completed)
    return str(result.response.choices[0].message["content"])


async def test_a_masked_value_never_reaches_the_terminal_and_the_client_gets_it_back() -> None:
    g = guarded(config({"input": [{"use": "emails", "action": "mask"}]}))
    ctx, result = await g.run("write to bob@example.com please")
    sent = g.terminal.bodies[0].messages[0].content
    assert sent == "write to <EMAIL_ADDRESS_1> please"
    assert answer(result) == "write to bob@example.com please"
    assert ctx.trace.metadata[MASKED] == {"EMAIL_ADDRESS": 1}
    (verdict,) = ctx.trace.metadata[VERDICTS]
    assert verdict["action"] == "mask" and verdict["spans"] == [
        {"start": 9, "end": 24, "entity": "EMAIL_ADDRESS", "score": 1.0}
    ]
    assert "bob@example.com" not in str(ctx.trace.metadata)
    # The body the trace records is the one sent: masked.
    assert "bob@example.com" not in ctx.body.model_dump_json()


async def test_a_streamed_answer_gets_its_originals_back() -> None:
    g = guarded(config({"input": [{"use": "emails", "action": "mask"}]}))
    _, result = await g.run("write to bob@example.com please", stream=True)
    text, error = await g.collect(result)
    assert error is None and text == "write to bob@example.com please"


async def test_a_blocked_input_is_a_400_naming_the_guardrail_and_never_sent() -> None:
    g = guarded(config({"input": [{"use": "no-swear", "action": "block"}]}))
    with pytest.raises(APIError) as caught:
        await g.run("damn this")
    assert caught.value.status == 400 and caught.value.code == "content_policy_violation"
    assert "'no-swear'" in caught.value.message
    assert g.terminal.bodies == []


async def test_a_flag_tags_the_trace_and_lets_the_request_through() -> None:
    g = guarded(config({"input": [{"use": "no-swear", "action": "flag"}]}))
    ctx, result = await g.run("damn this")
    assert answer(result) == "damn this"
    assert ctx.trace.metadata[ACTIONS] == ["no-swear:flag"]


async def test_a_fallback_sends_the_request_to_the_other_route() -> None:
    g = guarded(config({"input": [{"use": "no-swear", "action": "fallback", "route": "safe"}]}))
    ctx, _ = await g.run("damn this")
    assert g.terminal.routes == ["safe"]
    assert ctx.trace.metadata[FALLBACK] == {"guardrail": "no-swear", "from": "support", "to": "safe"}


async def test_a_blocked_answer_is_a_422() -> None:
    g = guarded(config({"output": [{"use": "no-swear", "action": "block"}]}), reply="well damn")
    with pytest.raises(APIError) as caught:
        await g.run("hello")
    assert caught.value.status == 422 and caught.value.code == "content_policy_violation"
    assert "answer was blocked by the guardrail 'no-swear'" in caught.value.message


async def test_output_mask_redacts_the_answer_for_good() -> None:
    g = guarded(config({"output": [{"use": "emails", "action": "mask"}]}), reply="ask eve@corp.io")
    _, result = await g.run("hello")
    assert answer(result) == "ask [EMAIL_ADDRESS]"


async def test_a_stream_that_turns_bad_is_cut_before_the_bad_chunk() -> None:
    g = guarded(config({"output": [{"use": "no-swear", "action": "block"}]}), reply="one two three damn four")
    ctx, result = await g.run("hello", stream=True)
    text, error = await g.collect(result)
    assert text == "one two three "
    assert error is not None and error.code == "content_policy_violation" and "'no-swear'" in error.message
    assert ctx.trace.metadata[ACTIONS] == ["no-swear:block"]


async def test_a_match_split_across_chunks_is_caught_by_the_window() -> None:
    g = guarded(
        config(
            {"output": [{"use": "no-swear", "action": "block"}]},
            definitions={**DEFINITIONS, "no-swear": {"type": "regex", "options": {"patterns": ["evil plan"]}}},
        ),
        reply="my evil plan is",
    )
    _, result = await g.run("hello", stream=True)
    text, error = await g.collect(result)
    assert text == "my evil " and error is not None


async def test_streamed_output_masking_redacts_within_the_chunk() -> None:
    g = guarded(config({"output": [{"use": "emails", "action": "mask"}]}), reply="ask eve@corp.io today")
    _, result = await g.run("hello", stream=True)
    text, error = await g.collect(result)
    assert error is None and text == "ask [EMAIL_ADDRESS] today"


async def test_async_guardrails_do_not_hold_the_request_and_flag_when_done() -> None:
    g = guarded(config({"input": [{"use": "gate", "action": "flag", "mode": "async"}]}))
    ctx, result = await g.run("hello")
    assert answer(result) == "hello"  # answered while the guardrail is still waiting
    gate = g.service.config.instances["gate"]
    await asyncio.sleep(0)  # let the background check start
    assert isinstance(gate, Gate) and gate.seen == ["hello"]
    (entry,) = ctx.trace.metadata[VERDICTS]
    assert entry["action"] == "pending" and entry["mode"] == "async"
    gate.release.set()
    await g.service.drain()
    assert entry["action"] == "flag" and entry["reason"] == "looks off-topic"
    assert ctx.trace.metadata[ACTIONS] == ["gate:flag"]


async def test_a_guardrail_that_raises_is_recorded_and_the_request_goes_on() -> None:
    g = guarded(config({"input": [{"use": "broken", "action": "block"}]}))
    ctx, result = await g.run("hello")
    assert answer(result) == "hello"
    assert ctx.trace.metadata[VERDICTS][0]["action"] == "error"
    assert ctx.trace.metadata[VERDICTS][0]["error"] == "RuntimeError"


async def test_team_and_key_attachments_add_to_the_route() -> None:
    g = guarded(
        config(
            {"input": [{"use": "emails", "action": "flag"}]},
            teams={"team_1": {"input": [{"use": "no-swear", "action": "block"}]}},
            keys={"ci": {"input": [{"use": "emails", "action": "mask"}]}},
        )
    )
    with pytest.raises(APIError):
        await g.run("damn", principal=Principal(key_id="k1", role="inference", team_id="team_1"))
    await g.run("damn")  # no team: the route's flag only
    ctx, _ = await g.run("to a@b.io", principal=Principal(key_id="k2", role="inference", name="ci"))
    assert ctx.trace.metadata[ACTIONS] == ["emails:mask"]  # the key's action replaces the route's
    assert g.terminal.bodies[-1].messages[0].content == "to <EMAIL_ADDRESS_1>"


async def test_a_blocked_request_is_traced_with_what_was_found_redacted() -> None:
    g = guarded(config({"input": [{"use": "emails", "action": "block"}]}))
    step = GuardInput(g.service, lambda c, n: None, lambda n: [])
    request = ChatCompletionRequest.model_validate(
        {"model": "support", "messages": [{"role": "user", "content": "leak bob@example.com now"}]}
    )
    ctx = RequestContext(kind="chat", body=request, request_id="r", trace=TraceRecord(), route_name="support")
    with pytest.raises(APIError):
        await step(ctx, g.terminal)
    # The record step stores ctx.body: the request as it would have been sent, less what was found.
    assert ctx.body.messages[0].content == "leak [EMAIL_ADDRESS] now"  # type: ignore[union-attr]
    assert g.terminal.bodies == []


async def test_on_error_refuse_answers_503_when_the_guardrail_fails() -> None:
    g = guarded(config({"input": [{"use": "broken", "action": "block", "on_error": "refuse"}]}))
    with pytest.raises(APIError) as caught:
        await g.run("hello")
    assert caught.value.status == 503 and caught.value.code == "guardrail_unavailable"
    assert "'broken'" in caught.value.message and g.terminal.bodies == []


async def test_a_failed_mask_guardrail_refuses_by_default_and_sends_nothing() -> None:
    g = guarded(config({"input": [{"use": "broken", "action": "mask"}]}))
    with pytest.raises(APIError) as caught:
        await g.run("write to bob@example.com")
    assert caught.value.status == 503 and caught.value.code == "guardrail_unavailable"
    assert g.terminal.bodies == []


async def test_a_failed_mask_guardrail_with_on_error_allow_lets_the_request_go_on() -> None:
    g = guarded(config({"input": [{"use": "broken", "action": "mask", "on_error": "allow"}]}))
    ctx, result = await g.run("hello")
    assert answer(result) == "hello" and ctx.trace.metadata[VERDICTS][0]["action"] == "error"


async def test_a_failed_data_policy_guardrail_refuses_by_default_even_unattached() -> None:
    g = guarded(config({}, data_policy={"restricted": ["broken"], "action": "reroute"}))
    with pytest.raises(APIError) as caught:
        await g.run("hello")
    assert caught.value.status == 503 and caught.value.code == "guardrail_unavailable"
    assert g.terminal.bodies == []


async def test_a_failed_data_policy_guardrail_attached_with_on_error_allow_goes_on() -> None:
    attach = {"input": [{"use": "broken", "action": "flag", "on_error": "allow"}]}
    g = guarded(config(attach, data_policy={"restricted": ["broken"], "action": "reroute"}))
    _, result = await g.run("hello")
    assert answer(result) == "hello"


async def test_a_text_too_large_to_check_is_refused_with_413_whatever_on_error_says() -> None:
    g = guarded(config({"input": [{"use": "too-large", "action": "flag", "on_error": "allow"}]}))
    with pytest.raises(APIError) as caught:
        await g.run("hello")
    error = caught.value
    assert error.status == 413 and error.code == "guardrail_input_too_large" and error.param == "messages"
    assert "'too-large'" in error.message and "max_chars 3" in error.message
    assert g.terminal.bodies == []


async def test_an_answer_too_large_to_check_is_refused_with_422() -> None:
    g = guarded(config({"output": [{"use": "too-large", "action": "flag"}]}))
    with pytest.raises(APIError) as caught:
        await g.run("hello")
    assert caught.value.status == 422 and caught.value.code == "guardrail_input_too_large"


async def test_on_error_refuse_cuts_a_stream_whose_guardrail_fails() -> None:
    g = guarded(config({"output": [{"use": "broken", "action": "block", "on_error": "refuse"}]}), reply="a b c")
    _, result = await g.run("hello", stream=True)
    text, error = await g.collect(result)
    assert text == "" and error is not None and error.code == "guardrail_unavailable"


async def test_the_guardrail_policy_goes_into_the_cache_key_even_with_output_guardrails_only() -> None:
    g = guarded(
        config(
            {},
            keys={
                "strict": {"output": [{"use": "no-swear", "action": "block"}]},
                "stricter": {"output": [{"use": "no-swear", "action": "block", "options": {"words": ["heck"]}}]},
                "flagger": {"output": [{"use": "no-swear", "action": "flag"}]},
            },
        )
    )
    digests = []
    for name in ("strict", "strict", "stricter", "flagger"):
        ctx, _ = await g.run("fine words", principal=Principal(key_id=f"k-{name}", role="inference", name=name))
        vary = ctx.slots.get(CACHE_VARY)
        assert vary is not None and len(vary["guardrails"]) == 64
        digests.append(vary["guardrails"])
    assert digests[0] == digests[1]  # one policy, one digest, whichever key holds it
    assert len(set(digests)) == 3  # other options, another action: another digest
    ctx, _ = await g.run("fine words")  # no guardrail applies: nothing added to the key
    assert ctx.slots.get(CACHE_VARY) is None


async def test_a_changed_definition_changes_the_policy_digest() -> None:
    uses = {"output": [{"use": "no-swear", "action": "block"}]}
    first = guarded(config(uses))
    ctx, _ = await first.run("fine words")
    changed = config(uses)
    changed["guardrails"]["definitions"] = {**DEFINITIONS, "no-swear": {"type": "regex", "options": {"words": ["x"]}}}
    ctx_changed, _ = await guarded(changed).run("fine words")
    before, after = ctx.slots.get(CACHE_VARY), ctx_changed.slots.get(CACHE_VARY)
    assert before is not None and after is not None and before != after


async def test_a_check_past_its_timeout_fails_and_a_mask_attachment_refuses() -> None:
    g = guarded(config({"input": [{"use": "gate", "action": "mask", "timeout_s": 0.05}]}))
    with pytest.raises(APIError) as caught:
        await g.run("hello")  # the gate is never released: only the timeout ends the check
    assert caught.value.status == 503 and "TimeoutError" in caught.value.message
    assert g.terminal.bodies == []
