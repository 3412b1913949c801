"""An OpenAI chat request as an Anthropic Messages call, normalised so the upstream never refuses it.

    call = to_messages_call(request, model="claude-sonnet-4-5", default_max_tokens=4096)
    call.body            # the POST /v1/messages body
    call.local_stops     # whitespace-only stop sequences, applied by lmdeck to the answer
    call.json_tool       # the forced tool that carries a response_format answer, if any

Every OpenAI parameter is either translated or refused here, before any upstream call, with a
400 in OpenAI's shape that names it (:data:`PARAMETERS` says which does what, and
docs/providers.md keeps the table). A parameter sent at its neutral value (``n=1``,
``presence_penalty=0``, ``logprobs=false``...) changes nothing and is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.chat import LMDECK_FIELDS
from lmdeck.providers.anthropic.errors import refuse
from lmdeck.providers.anthropic.messages import conversation

#: OpenAI parameters the translation reads (each one is honoured as docs/providers.md describes).
TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "safety_identifier",
        "service_tier",
        "metadata",
    }
)

#: The chat parameters the translation honours, as the gateway's eligibility check names them
#: (see :mod:`lmdeck.providers.capabilities`; ``model``, ``messages``, ``stream``, ``user`` and
#: ``metadata`` are always honoured). A target is skipped for a request using anything else.
CHAT_PARAMS = (TRANSLATED - {"model", "messages", "stream", "stream_options", "user", "metadata"}) | {
    "stream_options.include_usage"
}

#: Parameters with no Anthropic counterpart, accepted only at the value that changes nothing.
NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "n": lambda v: v == 1,
    "frequency_penalty": lambda v: v == 0,
    "presence_penalty": lambda v: v == 0,
    "logprobs": lambda v: v is False,
    "top_logprobs": lambda v: v == 0,
    "logit_bias": lambda v: not v,
    "store": lambda v: v is False,
    "modalities": lambda v: v == ["text"],
}

#: Why a parameter cannot be translated, for the error message.
WHY: dict[str, str] = {
    "n": "Anthropic returns one choice per request: send n separate requests",
    "seed": "Anthropic has no seeded sampling",
    "logprobs": "Anthropic returns no log probabilities",
    "top_logprobs": "Anthropic returns no log probabilities",
    "logit_bias": "Anthropic has no logit bias",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "presence_penalty": "Anthropic has no presence penalty",
    "store": "Anthropic does not store completions",
    "modalities": "Anthropic answers in text only",
    "audio": "Anthropic answers in text only",
    "functions": "legacy functions are not translated: use tools",
    "function_call": "legacy function_call is not translated: use tool_choice",
    "reasoning_effort": "extended thinking is not translated",
    "prediction": "Anthropic has no predicted outputs",
    "web_search_options": "Anthropic's web search is a server tool lmdeck does not translate",
}

#: OpenAI ``service_tier`` values and Anthropic's counterparts.
SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}

#: The name of the tool that carries a ``response_format`` answer when none is given.
JSON_TOOL = "json_response"

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


@dataclass
class MessagesCall:
    """A Messages API body and what lmdeck itself must do to the answer."""

    body: dict[str, Any]
    local_stops: list[str] = field(default_factory=list)
    json_tool: str | None = None


def _sent(request: ChatCompletionRequest) -> dict[str, Any]:
    """The parameters the client actually sent with a value (null counts as not sent)."""
    fields = {name: getattr(request, name) for name in request.model_fields_set}
    fields.update(request.model_extra or {})
    return {k: v for k, v in fields.items() if v is not None and k not in LMDECK_FIELDS}


def _check_parameters(sent: dict[str, Any]) -> None:
    for name, value in sent.items():
        if name in TRANSLATED:
            continue
        neutral = NEUTRAL.get(name)
        if neutral is not None and neutral(value):
            continue
        reason = WHY.get(name, "it has no counterpart in the Messages API")
        raise refuse(
            name,
            f"anthropic does not support `{name}` ({reason}); remove it or route to a provider that supports it",
        )


def _sampling(request: ChatCompletionRequest, sent: dict[str, Any], body: dict[str, Any]) -> None:
    temperature, top_p = request.temperature, request.top_p
    if temperature is not None and temperature > 1:
        raise refuse(
            "temperature",
            f"anthropic takes temperature from 0 to 1, not {temperature:g}: send a value in that range",
            code="invalid_value",
        )
    if temperature is not None and top_p is not None:
        # Anthropic's current models take one or the other; a neutral value of either changes nothing.
        if top_p == 1:
            top_p = None
        elif temperature == 1:
            temperature = None
        else:
            raise refuse(
                "top_p",
                "anthropic takes temperature or top_p, not both: send only one of them",
                code="invalid_value",
            )
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    top_k = sent.get("top_k")
    if top_k is not None:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise refuse("top_k", "top_k must be a positive integer", code="invalid_value")
        body["top_k"] = top_k


def _stops(request: ChatCompletionRequest, body: dict[str, Any]) -> list[str]:
    upstream: list[str] = []
    local: list[str] = []
    for i, stop in enumerate(request.stop_list()):
        if not stop:
            raise refuse(f"stop.{i}" if isinstance(request.stop, list) else "stop", "stop sequences must not be empty")
        # Anthropic refuses whitespace-only stop sequences; lmdeck applies those to the answer itself.
        (upstream if stop.strip() else local).append(stop)
    if upstream:
        body["stop_sequences"] = upstream
    return local


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type", "function") != "function":
            raise refuse(f"tools.{i}.type", f"anthropic takes function tools only, not {tool.get('type')!r}")
        function = _object(tool.get("function"))
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise refuse(
                f"tools.{i}.function.name",
                f"tools.{i}.function.name must be 1 to 64 letters, digits, '_' or '-'",
                code="invalid_value",
            )
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise refuse(
                f"tools.{i}.function.parameters",
                f"tools.{i}.function.parameters must be a JSON schema of type 'object'",
                code="invalid_value",
            )
        entry: dict[str, Any] = {"name": name, "input_schema": {"type": "object", **schema}}
        if isinstance(function.get("description"), str) and function["description"]:
            entry["description"] = function["description"]
        if function.get("strict") is True:
            entry["strict"] = True
        out.append(entry)
    return out


def _tool_choice(choice: Any, names: set[str]) -> dict[str, Any]:
    if choice in ("auto", "required", "none"):
        return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise refuse("tool_choice", f"tool_choice names {name!r}, which is not in tools", code="invalid_value")
        return {"type": "tool", "name": name}
    raise refuse("tool_choice", f"anthropic cannot take tool_choice {choice!r}: use auto, required, none or a function")


def _response_format(spec: Any, body: dict[str, Any]) -> str | None:
    """Force a JSON answer through a tool call whose input is the answer; returns the tool's name."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind not in ("json_object", "json_schema"):
        raise refuse("response_format", f"response_format type {kind!r} is not one of text, json_object, json_schema")
    if body.get("tools"):
        raise refuse(
            "response_format",
            "anthropic answers in JSON through a forced tool call, so response_format cannot be combined with tools",
        )
    name, schema, strict = JSON_TOOL, {"type": "object"}, False
    if kind == "json_schema":
        spec_schema = _object(spec.get("json_schema"))
        schema = spec_schema.get("schema") or {"type": "object"}
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise refuse(
                "response_format.json_schema.schema",
                "anthropic can only be made to answer with a JSON object: the schema's type must be 'object'",
                code="invalid_value",
            )
        wanted = spec_schema.get("name")
        name = wanted if isinstance(wanted, str) and _TOOL_NAME.match(wanted) else JSON_TOOL
        strict = spec_schema.get("strict") is True
    tool: dict[str, Any] = {
        "name": name,
        "description": "Answer by calling this tool: its input is the whole answer.",
        "input_schema": {"type": "object", **schema},
    }
    if strict:
        tool["strict"] = True
    body["tools"] = [tool]
    body["tool_choice"] = {"type": "tool", "name": name}
    return name


def to_messages_call(request: ChatCompletionRequest, model: str, default_max_tokens: int) -> MessagesCall:
    """The Messages call for an OpenAI chat request; raises a 400 :class:`~lmdeck.protocol.APIError` for one
    that cannot be translated (nothing is sent upstream then)."""
    sent = _sent(request)
    _check_parameters(sent)
    system, messages = conversation(request.messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.token_limit() or default_max_tokens,
    }
    if system:
        cached = any("cache_control" in b for b in system)
        body["system"] = system if cached else "\n\n".join(b["text"] for b in system)
    _sampling(request, sent, body)
    local_stops = _stops(request, body)
    if request.tools:
        body["tools"] = _tools(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice, {t["name"] for t in body["tools"]})
        if sent.get("parallel_tool_calls") is False and body.get("tool_choice", {}).get("type") != "none":
            body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    elif request.tool_choice is not None:
        raise refuse(
            "tool_choice", "tool_choice needs tools: send tools or leave tool_choice out", code="invalid_value"
        )
    json_tool = _response_format(request.response_format, body) if request.response_format else None
    user = request.user or sent.get("safety_identifier")
    if user:
        body["metadata"] = {"user_id": str(user)}
    tier = sent.get("service_tier")
    if tier is not None:
        if tier not in SERVICE_TIERS:
            raise refuse("service_tier", f"anthropic has no service tier {tier!r}: use auto or default")
        body["service_tier"] = SERVICE_TIERS[tier]
    if request.stream:
        body["stream"] = True
    return MessagesCall(body, local_stops, json_tool)


def to_messages_request(request: ChatCompletionRequest, model: str, default_max_tokens: int) -> dict[str, Any]:
    """The Messages body alone (see :func:`to_messages_call`)."""
    return to_messages_call(request, model, default_max_tokens).body
