"""The request rules of Anthropic's Messages API, as the FAKE Anthropic server enforces them.

    problem(body)   # None when the real API would take ``body``, else its 400 message

Each rule follows Anthropic's published request rules (the API reference and the tool-use,
vision and prompt-caching guides) and words its message as the real API does, so that a
translation mistake fails a test the way it would fail in production. docs/providers.md
keeps the same list as a table, with what lmdeck does about each rule. Where the API has
relaxed a rule over time (consecutive turns of one role, a first assistant turn), the fake
keeps the strict form that every API version accepts.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

BODY_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "service_tier",
        "thinking",
    }
)
MESSAGE_FIELDS = frozenset({"role", "content"})
BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result"})
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES = 100
MAX_CACHE_BREAKPOINTS = 4
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


class Refused(Exception):
    """What the real API would answer with 400 ``invalid_request_error``."""


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise Refused(f"{where}: Input should be a valid string or a list of content blocks")
    return content


def _cache_control(block: dict[str, Any], where: str, counter: list[int]) -> None:
    control = block.get("cache_control")
    if control is None:
        return
    if (
        not isinstance(control, dict)
        or control.get("type") != "ephemeral"
        or control.get("ttl", "5m") not in ("5m", "1h")
    ):
        raise Refused(f"{where}.cache_control: Input should be {{'type': 'ephemeral', 'ttl': '5m' | '1h'}}")
    counter[0] += 1
    if counter[0] > MAX_CACHE_BREAKPOINTS:
        raise Refused(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {counter[0]}."
        )


def _text_block(block: dict[str, Any], where: str) -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise Refused(f"{where}.text: Field required")
    if not text:
        raise Refused("messages: text content blocks must be non-empty")
    if not text.strip():
        raise Refused("messages: text content blocks must contain non-whitespace text")


def _image_block(block: dict[str, Any], where: str) -> None:
    source = _object(block.get("source"))
    if source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise Refused(f"{where}.source.url: Input should be a valid URL")
        return
    if source.get("type") != "base64":
        raise Refused(f"{where}.source: Input tag should be 'base64' or 'url'")
    if source.get("media_type") not in IMAGE_TYPES:
        raise Refused(f"{where}.source.base64.media_type: Input should be {', '.join(map(repr, IMAGE_TYPES))}")
    try:
        size = len(base64.b64decode(str(source.get("data", "")), validate=True))
    except (binascii.Error, ValueError):
        raise Refused(f"{where}.source.base64.data: invalid base64 data") from None
    if size > MAX_IMAGE_BYTES:
        raise Refused(f"{where}.source.base64: image exceeds 5 MB maximum: {size} bytes > {MAX_IMAGE_BYTES} bytes")


def _document_block(block: dict[str, Any], where: str) -> None:
    source = _object(block.get("source"))
    kind, media_type = source.get("type"), source.get("media_type")
    if not ((kind == "base64" and media_type == "application/pdf") or (kind == "text" and media_type == "text/plain")):
        raise Refused(f"{where}.source: a document must be a base64 PDF or plain text")


def _content(
    message: dict[str, Any], i: int, final: bool, counter: list[int], images: list[int]
) -> list[dict[str, Any]]:
    role = message["role"]
    blocks = _blocks(message.get("content"), f"messages.{i}.content")
    if not blocks and not (final and role == "assistant"):
        raise Refused(
            f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )
    seen_other = False
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            raise Refused(f"{where}.type: Input tag {kind!r} does not match any of the expected tags")
        extra = set(block) - {
            "type",
            "text",
            "source",
            "id",
            "name",
            "input",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
            "title",
            "citations",
        }
        if extra:
            raise Refused(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")
        _cache_control(block, where, counter)
        if kind == "text":
            _text_block(block, where)
        elif kind == "image":
            _image_block(block, where)
            images[0] += 1
        elif kind == "document":
            _document_block(block, where)
        elif kind == "tool_use":
            if role != "assistant":
                raise Refused(f"{where}: tool_use blocks are only allowed in assistant messages")
            if not TOOL_USE_ID.match(str(block.get("id", ""))):
                raise Refused(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(block.get("input"), dict):
                raise Refused(f"{where}.tool_use.input: Input should be a valid dictionary")
        elif kind == "tool_result":
            if role != "user":
                raise Refused(f"{where}: tool_result blocks are only allowed in user messages")
            if seen_other:
                raise Refused(f"messages.{i}: tool_result blocks must come first in the content of a user message")
            inner = block.get("content")
            if isinstance(inner, list):
                for k, part in enumerate(inner):
                    if isinstance(part, dict) and part.get("type") == "text":
                        _text_block(part, f"{where}.content.{k}")
        if kind != "tool_result":
            seen_other = True
    if final and role == "assistant" and blocks:
        last = blocks[-1]
        if last.get("type") == "text" and str(last.get("text", "")) != str(last.get("text", "")).rstrip():
            raise Refused("messages: final assistant content cannot end with trailing whitespace")
    return blocks


def _messages(body: dict[str, Any], counter: list[int]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refused("messages: at least one message is required")
    images = [0]
    previous_uses: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Refused(f"messages.{i}: Input should be a valid dictionary")
        extra = set(message) - MESSAGE_FIELDS
        if extra:
            raise Refused(f"messages.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Refused(f"messages.{i}.role: Input should be 'user' or 'assistant' (system text goes in 'system')")
        if i == 0 and role != "user":
            raise Refused('messages: first message must use the "user" role')
        if i > 0 and messages[i - 1].get("role") == role:
            raise Refused(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles in a row'
            )
        blocks = _content(message, i, i == len(messages) - 1, counter, images)
        results = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
        for j, result in enumerate(results):
            if result not in previous_uses:
                raise Refused(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {result}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
        missing = [u for u in previous_uses if u not in results]
        if missing:
            raise Refused(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            )
        previous_uses = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
    if previous_uses:
        raise Refused(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(previous_uses)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
        )
    if images[0] > MAX_IMAGES:
        raise Refused(f"messages: too many images: at most {MAX_IMAGES} images per request")


def _system(body: dict[str, Any], counter: list[int]) -> None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Refused("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Refused(f"system.{j}.type: Input should be 'text'")
        _text_block(block, f"system.{j}")
        _cache_control(block, f"system.{j}", counter)


def _sampling(body: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise Refused(f"{name}: Input should be less than or equal to 1")
    if body.get("temperature") is not None and body.get("top_p") is not None:
        raise Refused("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise Refused("top_k: Input should be greater than or equal to 0")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise Refused("stop_sequences: Input should be a valid list of strings")
        if any(not s.strip() for s in stops):
            raise Refused("stop_sequences: each stop sequence must contain non-whitespace")


def _tools(body: dict[str, Any], counter: list[int]) -> None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise Refused("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise Refused(f"tools.{i}: Input should be a valid dictionary")
            extra = set(tool) - {"name", "description", "input_schema", "cache_control", "strict", "type"}
            if extra:
                raise Refused(f"tools.{i}.custom.{sorted(extra)[0]}: Extra inputs are not permitted")
            if not TOOL_NAME.match(str(tool.get("name", ""))):
                raise Refused(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Refused(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
            _cache_control(tool, f"tools.{i}", counter)
            names.add(str(tool["name"]))
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tools:
        raise Refused("tool_choice: tool_choice may only be specified while providing tools")
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Refused("tool_choice: Input tag should be 'auto', 'any', 'tool' or 'none'")
    if choice.get("type") == "tool" and choice.get("name") not in names:
        raise Refused(f"tool_choice.name: tool {choice.get('name')!r} is not among the tools")
    extra = set(choice) - {"type", "name", "disable_parallel_tool_use"}
    if extra:
        raise Refused(f"tool_choice.{sorted(extra)[0]}: Extra inputs are not permitted")


def problem(body: Any) -> str | None:
    """The 400 message the Messages API would answer ``body`` with, or None when it would take it."""
    try:
        if not isinstance(body, dict):
            raise Refused("the body must be a JSON object")
        extra = set(body) - BODY_FIELDS
        if extra:
            raise Refused(f"{sorted(extra)[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise Refused("model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise Refused("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise Refused("max_tokens: Input should be greater than or equal to 1")
        counter = [0]
        _system(body, counter)
        _messages(body, counter)
        _sampling(body)
        _tools(body, counter)
        metadata = body.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
            raise Refused("metadata: only user_id is permitted")
        if body.get("service_tier") not in (None, "auto", "standard_only"):
            raise Refused("service_tier: Input should be 'auto' or 'standard_only'")
    except Refused as refused:
        return str(refused)
    return None
