"""run_translated: a translated chat request runs through the pipeline, marked with its ingress."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from lmdeck.gateway.ingress.runner import run_translated
from lmdeck.gateway.serving import InferenceServing
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.chat import ChatCompletionResponse
from lmdeck.providers.base import UpstreamError


class OneKey:
    async def authenticate(self, token: str) -> Principal | None:
        return Principal(key_id="k1", role="developer", team_id="t1") if token == "good" else None


def app_with(terminal_fails: bool) -> tuple[FastAPI, list[RequestContext]]:
    seen: list[RequestContext] = []

    async def terminal(ctx: RequestContext) -> Result:
        seen.append(ctx)
        if terminal_fails:
            raise UpstreamError(502, "the upstream is down", kind="connect")
        reply = {"role": "assistant", "content": "hi"}
        return Completed(ChatCompletionResponse(id="c1", created=1, model="m", choices=[{"message": reply}]))

    serving = InferenceServing(Pipeline([], terminal), OneKey())
    app = FastAPI()

    @app.post("/v1/other")
    async def other(request: Request) -> Response:
        body = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hello"}])  # type: ignore[list-item]

        async def answer(ctx: RequestContext, result: Result) -> Response:
            assert isinstance(result, Completed)
            assert isinstance(result.response, ChatCompletionResponse)
            return JSONResponse({"text": result.response.choices[0].message["content"]})

        return await run_translated(serving, request, body, Ingress("responses", {"input": "hello"}), answer)

    return app, seen


async def post(app: FastAPI, token: str = "good") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post("/v1/other", headers={"authorization": f"Bearer {token}"})


async def test_the_answer_is_built_from_the_pipeline_result_and_the_trace_names_the_ingress() -> None:
    app, seen = app_with(terminal_fails=False)
    response = await post(app)
    assert response.status_code == 200 and response.json() == {"text": "hi"}
    (ctx,) = seen
    assert ctx.kind == "chat" and ctx.principal is not None and ctx.principal.team_id == "t1"
    assert ctx.ingress is not None and ctx.ingress.body == {"input": "hello"}
    assert ctx.trace.metadata["ingress"] == "responses"


async def test_an_upstream_failure_is_answered_in_openai_error_shape() -> None:
    app, _ = app_with(terminal_fails=True)
    response = await post(app)
    assert response.status_code == 502
    assert set(response.json()["error"]) >= {"message", "type", "code"}
