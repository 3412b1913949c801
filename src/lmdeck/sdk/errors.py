"""The one exception the Python client raises (see :mod:`lmdeck.sdk.client`)."""

from __future__ import annotations

from typing import Any


class LMDeckError(Exception):
    """A call failed: the server's error (OpenAI-shaped) or the reason it was not reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.body = body

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message
