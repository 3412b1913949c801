"""What an upstream said in an error answer's body, read the same way for every OpenAI-compatible server.

parsed, said = error_message(b'{"error": {"message": "model not found"}}')
said                                                  # 'model not found'
error_message(b'{"object": "error", "message": "LoRA adapter not found"}')[1]   # vLLM's shape
error_message(b'{"detail": "Not Found"}')[1]          # FastAPI's shape
error_message(b"<html>bad gateway</html>")            # (None, None): not JSON
"""

from __future__ import annotations

from typing import Any

import orjson


def error_message(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(the body as a JSON object or None, the message it carries or None)``.

    The message is ``error.message`` (OpenAI), ``error`` when it is a string, else a top-level
    ``message`` (vLLM) or ``detail`` (FastAPI), in that order.
    """
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    error = parsed.get("error")
    if isinstance(error, dict):
        said = error.get("message")
    elif isinstance(error, str):
        said = error
    else:
        said = parsed.get("message", parsed.get("detail"))
    return parsed, str(said) if said else None
