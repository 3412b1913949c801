"""A Messages request as the chat request the pipeline runs.

    body = parse_request(raw)                  # MessagesRequest; a 400 naming the field otherwise
    chat = to_chat(body)                       # ChatCompletionRequest (model: the lmdeck route)
    native_only(body)                          # ["thinking"]: what only an Anthropic target can take

How each part is carried:

- ``system`` (a string or text blocks) → a ``system`` message; ``cache_control`` is kept on text parts;
- user ``text`` and ``image`` blocks (``base64`` → a data URL, ``url``) → content parts;
  ``tool_result`` blocks → ``tool`` messages (before the rest of the turn, as Anthropic orders them),
  ``is_error`` results prefixed ``error:``;
- assistant ``text`` and ``tool_use`` blocks → ``content`` and ``tool_calls`` (``input`` as JSON);
- ``tools`` → functions (``input_schema`` → ``parameters``); ``tool_choice`` ``auto`` / ``any`` /
  ``tool`` / ``none`` → ``auto`` / ``required`` / the named function / ``none``;
  ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``;
- ``stop_sequences`` → ``stop``; ``max_tokens``, ``temperature``, ``top_p`` as they are; ``top_k`` is
  passed on (a target that cannot honour it is skipped, and when none can the answer is a 400 naming
  it); ``metadata.user_id`` → ``user``; ``stream`` → ``stream`` with ``stream_options.include_usage``.

``thinking``, assistant ``thinking`` / ``redacted_thinking`` blocks and Anthropic's server tools
(a ``tools`` entry with a ``type``) have no chat form: they are served only by an Anthropic target
receiving the request as sent (see :mod:`lmdeck.gateway.ingress.messages.serving`).
Anything else a block or field holds that cannot be carried is refused with a 400 naming it.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from lmdeck.gateway.serving import parse_body
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.messages import MessageParam, MessagesRequest

#: Assistant blocks that only an Anthropic target can take back (signed reasoning).
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def refuse(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, f"{param}: {message}", param=param, code=code)


def parse_request(raw: bytes) -> MessagesRequest:
    """Validate a Messages body (strictly, as chat bodies are): a 400 naming the field otherwise."""
    body: MessagesRequest = parse_body(raw, MessagesRequest)
    return body


def native_only(body: MessagesRequest) -> list[str]:
    """The parameters of ``body`` that only an Anthropic target receiving it as sent can honour."""
    found: list[str] = []
    if body.thinking is not None:
        found.append("thinking")
    for i, message in enumerate(body.messages):
        if isinstance(message.content, list):
            for j, block in enumerate(message.content):
                if block.get("type") in THINKING_BLOCKS:
                    found.append(f"messages.{i}.content.{j}")
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") not in (None, "custom"):
            found.append(f"tools.{i}.type")
    return found


def _text_part(block: dict[str, Any], at: str) -> dict[str, Any]:
    text = block.get("text")
    if not isinstance(text, str):
        raise refuse(f"{at}.text", "a text block needs a string `text`")
    part: dict[str, Any] = {"type": "text", "text": text}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: dict[str, Any], at: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise refuse(f"{at}.source", "an image block needs a `source` object")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str) or not media.startswith("image/"):
            raise refuse(f"{at}.source", "a base64 image needs `media_type` (image/...) and `data` strings")
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        given = source.get("url")
        if not isinstance(given, str) or not given:
            raise refuse(f"{at}.source.url", "a url image needs a `url` string")
        url = given
    else:
        raise refuse(f"{at}.source.type", f"an image source is `base64` or `url`, not {kind!r}")
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _tool_result(block: dict[str, Any], at: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise refuse(f"{at}.tool_use_id", "a tool_result block needs the `tool_use_id` of the tool_use it answers")
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise refuse(
                    f"{at}.content.{k}.type",
                    f"a tool result is carried to this model as text only, not {kind!r}: send text, "
                    "or use a route whose targets are Anthropic models",
                )
            texts.append(_text_part(part, f"{at}.content.{k}")["text"])
        text = "\n".join(texts)
    else:
        raise refuse(f"{at}.content", "a tool_result's `content` is a string or a list of blocks")
    if block.get("is_error") is True:
        text = f"error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user_turn(message: MessageParam, i: int) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        at = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            results.append(_tool_result(block, at))
        else:
            raise refuse(f"{at}.type", f"a user turn takes text, image and tool_result blocks, not {kind!r}")
    turn = list(results)
    if parts:
        simple = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        content: Any = "".join(p["text"] for p in parts) if simple and len(parts) == 1 else parts
        turn.append({"role": "user", "content": content})
    return turn


def _assistant_turn(message: MessageParam, i: int) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(message.content)):
        at = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_part(block, at)["text"])
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
                raise refuse(at, "a tool_use block needs `id` and `name` strings and an `input` object")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
                }
            )
        elif kind in THINKING_BLOCKS:
            continue  # only a native Anthropic target takes these back (see native_only)
        else:
            raise refuse(f"{at}.type", f"an assistant turn takes text and tool_use blocks, not {kind!r}")
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _system(system: str | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    parts = []
    for j, block in enumerate(system):
        if block.get("type") != "text":
            raise refuse(f"system.{j}.type", f"system blocks are text blocks, not {block.get('type')!r}")
        parts.append(_text_part(block, f"system.{j}"))
    return {"role": "system", "content": parts}


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool: native only (see native_only)
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise refuse(f"tools.{i}.name", "a tool needs a `name`")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise refuse(f"tools.{i}.input_schema", "a tool needs an `input_schema` object (a JSON Schema)")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        entry: dict[str, Any] = {"type": "function", "function": function}
        if tool.get("cache_control") is not None:
            entry["cache_control"] = tool["cache_control"]
        out.append(entry)
    return out


def _tool_choice(choice: dict[str, Any], chat: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise refuse("tool_choice.name", "`tool_choice` of type `tool` names the tool in `name`")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise refuse("tool_choice.type", f"`tool_choice.type` is auto, any, tool or none, not {kind!r}")
    unknown = set(choice) - {"type", "name", "disable_parallel_tool_use"}
    if unknown:
        raise refuse(f"tool_choice.{sorted(unknown)[0]}", "not a field of `tool_choice`")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        chat["parallel_tool_calls"] = False


def _metadata(metadata: dict[str, Any], chat: dict[str, Any]) -> None:
    for key, value in metadata.items():
        if key != "user_id":
            raise refuse(f"metadata.{key}", "Anthropic's `metadata` holds `user_id` only")
        if value is not None:
            if not isinstance(value, str):
                raise refuse("metadata.user_id", "`metadata.user_id` is a string")
            chat["user"] = value


def to_chat(body: MessagesRequest) -> ChatCompletionRequest:
    """The chat request that asks what ``body`` asks (see the module docs); a 400 naming what cannot be carried."""
    messages: list[dict[str, Any]] = []
    if body.system is not None and body.system != "" and body.system != []:
        messages.append(_system(body.system))
    for i, turn in enumerate(body.messages):
        if turn.role == "user":
            messages.extend(_user_turn(turn, i))
        else:
            messages.append(_assistant_turn(turn, i))
    chat: dict[str, Any] = {"model": body.model, "messages": messages, "max_tokens": body.max_tokens}
    if body.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(body, name)
        if value is not None:
            chat[name] = value
    if body.stop_sequences:
        chat["stop"] = list(body.stop_sequences)
    if body.tools:
        tools = _tools(body.tools)
        if tools:
            chat["tools"] = tools
    if body.tool_choice is not None:
        _tool_choice(body.tool_choice, chat)
    if body.metadata:
        _metadata(body.metadata, chat)
    try:
        return ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:
        param, message = validation_param(exc.errors())
        raise APIError(400, f"{param}: {message}", param=param, code="invalid_value") from None
