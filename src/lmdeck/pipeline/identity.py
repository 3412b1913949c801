"""Who is calling: the bearer key a request presents and the :class:`Principal` it resolves to.

The contract every layer shares; the key store behind :class:`Authenticator` is policy's::

    token = bearer_token(request)                       # "Authorization: Bearer <key>" or None
    principal = await principal_for(authenticator, token)  # 401 when missing or unknown
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request

from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError


class Authenticator(Protocol):
    """Resolves a presented API key to the principal it belongs to, or None."""

    async def authenticate(self, token: str) -> Principal | None: ...


def missing_key() -> APIError:
    return APIError(
        401,
        "no API key: send it as 'Authorization: Bearer <key>' (lmdeck does not read x-api-key)",
        type="invalid_request_error",
        code="missing_api_key",
    )


def invalid_key() -> APIError:
    return APIError(401, "the API key is invalid, expired or revoked", code="invalid_api_key")


async def principal_for(authenticator: Authenticator, token: str | None) -> Principal:
    """The principal behind ``token``: a 401 :class:`APIError` when it is missing or unknown."""
    if not token:
        raise missing_key()
    principal = await authenticator.authenticate(token)
    if principal is None:
        raise invalid_key()
    return principal


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key of ``Authorization: Bearer <key>``, the only header lmdeck reads a key from.

    ``x-api-key`` is not read: lmdeck serves OpenAI's API, whose clients send the bearer
    header, and one header means no question of which key wins when a request carries two.
    """
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def bearer_token(request: Request) -> str | None:
    return token_from_headers(request.headers)
