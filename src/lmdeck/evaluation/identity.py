"""The identity background evaluation calls the gateway with.

Online rules run without a caller, yet an LLM judge must go through the pipeline like
any request (prompts, limits, budgets, traces). The gateway's authenticator is wrapped
so that one random token, minted at start-up and never written anywhere, stands for
the ``evaluation`` service principal; every other token goes to the real authenticator.
A rule owned by a team judges as that team (:meth:`ServiceIdentity.token_for`), so it
renders only the prompts that team may read and its calls count against that team::

    identity = ServiceIdentity()
    step = Authenticate(identity.wrap(authenticator))
    PipelineInference(pipeline, identity.token)
    PipelineInference(pipeline, identity.token_for("team_search"))

An eval run executed out of process (on Ray) calls the gateway over HTTP as the principal that
started it, with a token issued for that run and revoked when the run ends::

    token = identity.issue(principal)     # valid in this process only, until revoked
    identity.revoke(token)
"""

from __future__ import annotations

import hmac
import secrets

from lmdeck.pipeline.identity import Authenticator
from lmdeck.pipeline.principal import Principal

SERVICE_KEY_ID = "evaluation"


class ServiceAuthenticator:
    """The wrapped authenticator: a service token, else whatever the inner one says."""

    def __init__(self, inner: Authenticator, principals: dict[str, Principal]) -> None:
        self.inner = inner
        self._principals = principals  # token -> principal, shared with the ServiceIdentity

    async def authenticate(self, token: str) -> Principal | None:
        for known, principal in list(self._principals.items()):
            if hmac.compare_digest(token.encode(), known.encode()):
                return principal
        return await self.inner.authenticate(token)


class ServiceIdentity:
    """A token valid only inside this process, for the evaluation service principal."""

    def __init__(self) -> None:
        self.token = "sk-lmdeck-internal-" + secrets.token_urlsafe(32)
        self.principal = Principal(key_id=SERVICE_KEY_ID, role="developer", name="online evaluation")
        self._principals: dict[str, Principal] = {self.token: self.principal}
        self._by_team: dict[str | None, str] = {None: self.token}

    def token_for(self, team_id: str | None) -> str:
        """The token of the service principal acting in ``team_id`` (None: the default team)."""
        token = self._by_team.get(team_id)
        if token is None:
            token = "sk-lmdeck-internal-" + secrets.token_urlsafe(32)
            self._principals[token] = Principal(
                key_id=SERVICE_KEY_ID, role="developer", team_id=team_id, name="online evaluation"
            )
            self._by_team[team_id] = token
        return token

    def issue(self, principal: Principal) -> str:
        """A new token standing for ``principal`` until :meth:`revoke` (never stored; this process only)."""
        token = "sk-lmdeck-internal-" + secrets.token_urlsafe(32)
        self._principals[token] = principal
        return token

    def revoke(self, token: str) -> None:
        """Forget a token from :meth:`issue`; no error if it is unknown."""
        if token not in self._by_team.values():
            self._principals.pop(token, None)

    def wrap(self, authenticator: Authenticator) -> ServiceAuthenticator:
        return ServiceAuthenticator(authenticator, self._principals)
