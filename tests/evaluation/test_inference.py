"""Calls through the pipeline in-process: as a known principal (no token), with the serving's
after-response hooks when asked for them."""

from __future__ import annotations

from lmdeck.evaluation.inference import PipelineInference
from lmdeck.pipeline.chain import Handler, Pipeline
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import Authenticate
from lmdeck.protocol import APIError
from lmdeck.protocol.chat import ChatCompletionResponse

HI = [{"role": "user", "content": "hi"}]
DEV = Principal(key_id="key_dev", role="developer", team_id="team_a", allowed_models=frozenset({"demo"}))


class NoKeys:
    """An authenticator that knows no key: a request that needs a token to be checked fails with 401."""

    async def authenticate(self, token: str) -> Principal | None:
        return None


class Mirror:
    """A step that leaves an after-response hook, as the shadow stage does."""

    name = "mirror"

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        ctx.after_response.append(lambda: self.ran.append(ctx.request_id))
        return await call_next(ctx)


async def answer(ctx: RequestContext) -> Result:
    ctx.trace.input_tokens, ctx.trace.output_tokens = 3, 2
    message = {"role": "assistant", "content": f"hello {ctx.principal.key_id if ctx.principal else '?'}"}
    return Completed(
        ChatCompletionResponse(id="c1", created=0, model=ctx.route_name, choices=[{"index": 0, "message": message}])
    )


def pipeline(mirror: Mirror) -> Pipeline:
    return Pipeline([Authenticate(NoKeys()), mirror], terminal=answer)


async def test_a_known_principal_is_checked_and_traced_like_a_key_and_its_hooks_run() -> None:
    mirror = Mirror()
    inference = PipelineInference(
        pipeline(mirror), None, principal=DEV, tags=(), request_prefix="req_console_", after_response=True
    )
    reply = await inference.chat({"model": "demo", "messages": HI})
    assert reply.text == "hello key_dev" and (reply.input_tokens, reply.output_tokens) == (3, 2)
    assert len(mirror.ran) == 1 and mirror.ran[0].startswith("req_console_")
    try:
        await inference.chat({"model": "other", "messages": HI})
    except APIError as exc:
        assert (exc.status, exc.code) == (403, "model_not_allowed")
    else:
        raise AssertionError("a route outside the key's allowed models was served")


async def test_without_a_principal_the_token_is_checked_and_no_hook_runs_unless_asked() -> None:
    mirror = Mirror()
    try:
        await PipelineInference(pipeline(mirror), "sk-unknown").chat({"model": "demo", "messages": HI})
    except APIError as exc:
        assert exc.status == 401
    else:
        raise AssertionError("an unknown token was served")
    reply = await PipelineInference(pipeline(mirror), None, principal=DEV).chat({"model": "demo", "messages": HI})
    assert reply.text == "hello key_dev" and mirror.ran == []
