"""The identity background evaluation calls the gateway with.

Online rules run without a caller, yet an LLM judge must go through the pipeline like
any request (prompts, limits, budgets, traces). The gateway's authenticator is wrapped
so that one random token, minted at start-up and never written anywhere, stands for
the ``evaluation`` service principal; every other token goes to the real authenticator::

    identity = ServiceIdentity()
    step = Authenticate(identity.wrap(authenticator))
    PipelineInference(pipeline, identity.token)
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from lmdeck.policy.auth import Authenticator
from lmdeck.policy.principal import Principal

SERVICE_KEY_ID = "evaluation"


class ServiceAuthenticator:
    """The wrapped authenticator: the service token, else whatever the inner one says."""

    def __init__(self, inner: Authenticator, token: str, principal: Principal) -> None:
        self.inner = inner
        self._token = token
        self._principal = principal

    async def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self._token.encode()):
            return self._principal
        return await self.inner.authenticate(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ServiceIdentity:
    """A token valid only inside this process, for the evaluation service principal."""

    def __init__(self) -> None:
        self.token = "sk-lmdeck-internal-" + secrets.token_urlsafe(32)
        self.principal = Principal(key_id=SERVICE_KEY_ID, role="developer", name="online evaluation")

    def wrap(self, authenticator: Authenticator) -> ServiceAuthenticator:
        return ServiceAuthenticator(authenticator, self.token, self.principal)
