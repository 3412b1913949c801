"""OpenAI message content parts as Anthropic content blocks.

    blocks = user_blocks(message.content, where="messages.2")   # text, image and document blocks
    text_blocks(message.content, where="messages.0")            # text only (system, assistant, tool)

Text that is empty or only whitespace is dropped (Anthropic refuses such text blocks). Images go
as ``base64`` (data URLs of JPEG, PNG, GIF or WebP up to 5 MB) or ``url`` sources (http/https);
files go as ``document`` blocks (PDF or plain text ``file_data``). A part Anthropic cannot take
(audio, an OpenAI ``file_id``, another image type) is refused with a 400 naming the part. A
``cache_control`` on a part is kept, so callers can mark prompt-cache breakpoints.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from lmdeck.providers.anthropic.errors import refuse

#: Image media types the Messages API accepts.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
#: The largest image Anthropic accepts, in bytes.
MAX_IMAGE_BYTES = 5 * 1024 * 1024


def _with_cache_control(block: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    control = part.get("cache_control")
    if isinstance(control, dict):
        block["cache_control"] = control
    return block


def _text(part: dict[str, Any], where: str) -> dict[str, Any] | None:
    text = part.get("text")
    if not isinstance(text, str):
        raise refuse(f"{where}.text", f"{where}.text must be a string", code="invalid_value")
    if not text.strip():
        return None
    return _with_cache_control({"type": "text", "text": text}, part)


def _data_url(url: str, where: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:`` URL."""
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise refuse(where, f"{where}: a data URL must be base64 (data:<type>;base64,<data>)", code="invalid_value")
    return head.removesuffix(";base64").lower(), data


def _decoded_size(data: str, where: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise refuse(where, f"{where}: the base64 data is not valid", code="invalid_value") from None


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise refuse(f"{where}.image_url.url", f"{where}.image_url.url is required", code="invalid_value")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{where}.image_url.url")
        if media_type not in IMAGE_TYPES:
            raise refuse(
                f"{where}.image_url.url",
                f"anthropic takes JPEG, PNG, GIF or WebP images, not {media_type!r} ({where}): convert the image",
                code="unsupported_value",
            )
        if _decoded_size(data, f"{where}.image_url.url") > MAX_IMAGE_BYTES:
            raise refuse(
                f"{where}.image_url.url",
                f"anthropic takes images of at most 5 MB ({where}): scale the image down",
                code="invalid_value",
            )
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise refuse(
            f"{where}.image_url.url",
            f"{where}.image_url.url must be an http(s) URL or a base64 data URL",
            code="invalid_value",
        )
    return _with_cache_control({"type": "image", "source": source}, part)


def _document(part: dict[str, Any], where: str) -> dict[str, Any]:
    spec = part.get("file")
    spec = spec if isinstance(spec, dict) else {}
    if spec.get("file_id"):
        raise refuse(
            f"{where}.file.file_id",
            f"anthropic cannot read OpenAI file ids ({where}): send the file inline as file.file_data",
        )
    data_url = spec.get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise refuse(
            f"{where}.file.file_data",
            f"{where}.file.file_data must be a base64 data URL (data:application/pdf;base64,...)",
            code="invalid_value",
        )
    media_type, data = _data_url(data_url, f"{where}.file.file_data")
    if media_type == "application/pdf":
        _decoded_size(data, f"{where}.file.file_data")
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif media_type == "text/plain":
        raw = base64.b64decode(data) if _decoded_size(data, f"{where}.file.file_data") else b""
        source = {"type": "text", "media_type": media_type, "data": raw.decode("utf-8", errors="replace")}
    else:
        raise refuse(
            f"{where}.file.file_data",
            f"anthropic takes PDF or plain-text documents, not {media_type!r} ({where})",
            code="unsupported_value",
        )
    block: dict[str, Any] = {"type": "document", "source": source}
    if isinstance(spec.get("filename"), str) and spec["filename"]:
        block["title"] = spec["filename"]
    return _with_cache_control(block, part)


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    raise refuse(f"{where}.content", f"{where}.content must be a string or a list of parts", code="invalid_value")


def user_blocks(content: str | list[dict[str, Any]] | None, where: str) -> list[dict[str, Any]]:
    """Blocks of a user message: text, images, documents; empty text dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}.content.{j}"
        kind = part.get("type")
        if kind == "text":
            block = _text(part, at)
            if block is not None:
                blocks.append(block)
        elif kind == "image_url":
            blocks.append(_image(part, at))
        elif kind == "file":
            blocks.append(_document(part, at))
        elif kind == "input_audio":
            raise refuse(f"{at}.type", f"anthropic takes no audio input ({at}): transcribe it to text first")
        else:
            raise refuse(f"{at}.type", f"anthropic cannot take a content part of type {kind!r} ({at})")
    return blocks


def text_blocks(
    content: str | list[dict[str, Any]] | None, where: str, *, refusal: bool = False
) -> list[dict[str, Any]]:
    """Text-only blocks (system, assistant and tool messages); ``refusal`` parts count as text when allowed."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}.content.{j}"
        kind = part.get("type")
        if kind == "text" or (refusal and kind == "refusal"):
            block = _text({**part, "text": part.get("text", part.get("refusal"))}, at)
            if block is not None:
                blocks.append(block)
        else:
            raise refuse(f"{at}.type", f"{at}: only text parts are allowed here, not {kind!r}")
    return blocks
