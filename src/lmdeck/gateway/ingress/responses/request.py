"""A Responses request translated into a chat completion request.

    chat = to_chat(request, history)     # history: the stored messages of ``previous_response_id``

``instructions`` becomes the first (system) message, then the history, then ``input``: message items
become chat messages (``input_text`` → ``text`` parts, ``input_image`` → ``image_url`` parts),
consecutive ``function_call`` items one assistant message with ``tool_calls``, and each
``function_call_output`` a ``tool`` message. Raises :class:`~lmdeck.protocol.APIError` (400, naming
the parameter) for what has no chat equivalent.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from lmdeck.gateway.serving import parse_body
from lmdeck.protocol import APIError
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.responses import (
    REFUSED_FIELDS,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputImage,
    InputItem,
    InputText,
    MessageItem,
    Refusal,
    ResponsesChatRequest,
    ResponsesRequest,
    unknown_fields,
)

ITEMS: TypeAdapter[list[InputItem]] = TypeAdapter(list[InputItem])


def parse_request(raw: bytes) -> ResponsesRequest:
    """The request in ``raw``; a 400 naming the field otherwise (``input.2.type`` for a bad item, not
    just ``input``: a list ``input`` is judged as a list of items only)."""
    try:
        request: ResponsesRequest = parse_body(raw, ResponsesRequest)
        return request
    except APIError as exc:
        items = orjson.loads(raw).get("input") if exc.param == "input" else None
        if not isinstance(items, list):
            raise
        try:
            ITEMS.validate_python(items, strict=True)
        except ValidationError as invalid:
            param, message = validation_param(invalid.errors())
            param = f"input.{param}" if param else "input"
            raise APIError(400, f"{param}: {message}", param=param, code="invalid_value") from None
        raise


def refuse(param: str, message: str, code: str = "unsupported_parameter") -> APIError:
    return APIError(400, f"{param}: {message}", param=param, code=code)


def check_fields(request: ResponsesRequest) -> None:
    """Refuse, by name, every field lmdeck does not translate."""
    for name in unknown_fields(request):
        if name in REFUSED_FIELDS:
            raise refuse(name, "lmdeck does not serve this Responses parameter for this model; remove it")
        raise refuse(name, "unknown parameter; remove it", code="unknown_parameter")


def chat_part(part: InputText | InputImage | Refusal, param: str) -> dict[str, Any]:
    if isinstance(part, InputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "text", "text": part.refusal}
    if part.image_url is None:
        raise refuse(f"{param}.image_url", "only images given by `image_url` are served (not `file_id`)")
    image: dict[str, Any] = {"url": part.image_url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def chat_content(content: str | list[Any], param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts = [chat_part(part, f"{param}.{i}") for i, part in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def chat_messages(items: list[InputItem]) -> list[dict[str, Any]]:
    """``input`` items as chat messages (see the module docs)."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        param = f"input.{i}"
        if isinstance(item, MessageItem):
            messages.append({"role": item.role, "content": chat_content(item.content, f"{param}.content")})
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            assert isinstance(item, FunctionCallOutputItem)
            output = chat_content(item.output, f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
    return messages


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses' flat function tools as chat tools; any other tool type is refused by name."""
    translated = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise refuse(
                f"tools.{i}.type",
                f"the built-in tool {kind!r} is served only by a target that speaks the Responses API natively; "
                "use a function tool",
            )
        try:
            fn = FunctionTool.model_validate(tool, strict=True)
        except ValueError as exc:
            raise refuse(f"tools.{i}", f"not a function tool: {exc}", code="invalid_value") from None
        function: dict[str, Any] = {
            "name": fn.name,
            "parameters": fn.parameters or {"type": "object", "properties": {}},
        }
        if fn.description is not None:
            function["description"] = fn.description
        if fn.strict is not None:
            function["strict"] = fn.strict
        translated.append({"type": "function", "function": function})
    return translated


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    name = choice.get("name")
    if choice.get("type") != "function" or not isinstance(name, str) or not name:
        raise refuse("tool_choice", 'give "auto", "none", "required" or {"type": "function", "name": ...}')
    return {"type": "function", "function": {"name": name}}


def chat_response_format(request: ResponsesRequest) -> dict[str, Any] | None:
    fmt = request.text.format if request.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if not fmt.name or fmt.schema_ is None:
        raise refuse("text.format", "a `json_schema` format needs `name` and `schema`", code="invalid_value")
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    if fmt.description is not None:
        schema["description"] = fmt.description
    return {"type": "json_schema", "json_schema": schema}


def to_chat(request: ResponsesRequest, history: list[dict[str, Any]]) -> ResponsesChatRequest:
    """The chat request ``request`` asks for, continuing ``history`` (chat messages)."""
    check_fields(request)
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.extend(history)
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        messages.extend(chat_messages(request.input))
    if len(messages) == len(history) + bool(request.instructions):
        raise refuse("input", "give at least one input item", code="invalid_value")
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = chat_tools(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    response_format = chat_response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    if request.reasoning is not None:
        effort = request.reasoning.get("effort")
        if set(request.reasoning) - {"effort"} or not isinstance(effort, str):
            raise refuse("reasoning", "only `reasoning.effort` is served through translation")
        body["reasoning_effort"] = effort
    for src, dst in (
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
    ):
        value = getattr(request, src)
        if value is not None:
            body[dst] = value
    if request.user is not None:
        body["user"] = request.user
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    try:
        return ResponsesChatRequest.model_validate(body)
    except ValidationError as invalid:
        param, message = validation_param(invalid.errors())
        raise APIError(400, f"{param}: {message}", param="input", code="invalid_value") from None
