"""Which session (conversation) a request belongs to, as the caller names it.

A caller groups its requests into a session with the ``x-lmdeck-session-id`` header or
``metadata.session_id`` in the body; the conversation id experiments stick to
(``x-lmdeck-conversation-id``, ``metadata.conversation_id``) names one too::

    session_id_of({"x-lmdeck-session-id": "chat-42"}, None)        # "chat-42"
    session_id_of({}, {"conversation_id": "c-7"})                  # "c-7"
    session_id_of({}, {"session_id": 7})                           # APIError 400, param metadata.session_id

The first of header, ``metadata.session_id``, conversation header, ``metadata.conversation_id``
that is present wins. A session id is 1 to 128 visible ASCII characters (no spaces); any other
value is refused with a 400 naming where it came from, never dropped quietly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lmdeck.protocol.errors import APIError

SESSION_HEADER = "x-lmdeck-session-id"
CONVERSATION_HEADER = "x-lmdeck-conversation-id"
#: 1-128 visible ASCII characters.
SESSION_ID = re.compile(r"[\x21-\x7e]{1,128}")


def session_id_of(headers: Mapping[str, str], metadata: Any) -> str | None:
    """The request's session id (see the module docstring), or None when it names none.

    Raises :class:`APIError` (400, ``code=invalid_session_id``, ``param`` the header or field) for a
    value that is not 1-128 visible ASCII characters.
    """
    fields = metadata if isinstance(metadata, dict) else {}
    for param, value in (
        (SESSION_HEADER, headers.get(SESSION_HEADER)),
        ("metadata.session_id", fields.get("session_id")),
        (CONVERSATION_HEADER, headers.get(CONVERSATION_HEADER)),
        ("metadata.conversation_id", fields.get("conversation_id")),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
            raise APIError(
                400,
                f"{param}: a session id is 1 to 128 visible ASCII characters without spaces, got {value!r:.80}",
                param=param,
                code="invalid_session_id",
            )
        return value
    return None
