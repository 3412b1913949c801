"""error_message reads an upstream's error body in each shape OpenAI-compatible servers answer with."""

from __future__ import annotations

import pytest

from lmdeck.providers.error_body import error_message
from lmdeck.providers.openai import error_from_response


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"error": {"message": "model not found", "type": "invalid_request_error"}}', "model not found"),
        (b'{"error": "quota"}', "quota"),
        (
            b'{"object": "error", "message": "The lora adapter x does not exist.", "code": 404}',
            "The lora adapter x does not exist.",
        ),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'{"error": {"type": "x"}}', None),
        (b"[1, 2]", None),
        (b"<html>bad gateway</html>", None),
        (b"", None),
    ],
)
def test_the_message_of_each_shape(body: bytes, said: str | None) -> None:
    assert error_message(body)[1] == said


def test_an_upstream_error_keeps_the_message_and_the_parsed_body() -> None:
    error = error_from_response(404, {}, b'{"object": "error", "message": "no such adapter"}')
    assert str(error).endswith("upstream answered 404: no such adapter")
    assert error.body == {"object": "error", "message": "no such adapter"}
    assert "bad gateway" in str(error_from_response(502, {}, b"<html>bad gateway</html>"))
