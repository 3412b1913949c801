"""Which session a request names: header first, then metadata, then the conversation id; bad ids refused by name."""

from __future__ import annotations

import pytest

from lmdeck.protocol import APIError
from lmdeck.protocol.sessions import session_id_of


def test_the_session_header_wins_then_metadata_then_the_conversation_id() -> None:
    both = {"x-lmdeck-session-id": "s-header", "x-lmdeck-conversation-id": "c-header"}
    assert session_id_of(both, {"session_id": "s-meta"}) == "s-header"
    assert session_id_of({"x-lmdeck-conversation-id": "c-header"}, {"session_id": "s-meta"}) == "s-meta"
    assert session_id_of({"x-lmdeck-conversation-id": "c-header"}, {"conversation_id": "c-meta"}) == "c-header"
    assert session_id_of({}, {"conversation_id": "c-meta"}) == "c-meta"
    assert session_id_of({}, None) is None
    assert session_id_of({}, {"other": "x"}) is None


@pytest.mark.parametrize(
    ("headers", "metadata", "param"),
    [
        ({"x-lmdeck-session-id": "has space"}, None, "x-lmdeck-session-id"),
        ({"x-lmdeck-session-id": "x" * 129}, None, "x-lmdeck-session-id"),
        ({}, {"session_id": 7}, "metadata.session_id"),
        ({}, {"session_id": ""}, "metadata.session_id"),
        ({"x-lmdeck-conversation-id": "é"}, None, "x-lmdeck-conversation-id"),
        ({}, {"conversation_id": ["a"]}, "metadata.conversation_id"),
    ],
)
def test_a_bad_session_id_is_refused_naming_where_it_came_from(
    headers: dict[str, str], metadata: dict[str, object] | None, param: str
) -> None:
    with pytest.raises(APIError) as caught:
        session_id_of(headers, metadata)
    assert caught.value.status == 400 and caught.value.param == param
    assert caught.value.code == "invalid_session_id"
