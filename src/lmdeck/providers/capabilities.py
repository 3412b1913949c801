"""What a target can honour: its endpoints, and per endpoint the request parameters it acts on.

Every provider declares its capabilities in its own module, through the provider's
``capabilities()`` method (see :class:`lmdeck.providers.base.Provider`)::

    CHAT = frozenset({"max_tokens", "temperature", "top_p", "stop", "seed"})

    class EchoProvider:
        def capabilities(self) -> Capabilities:
            return Capabilities({"chat": CHAT})           # no completions, no embeddings

An OpenAI-compatible upstream receives every parameter and decides itself, which
:data:`FORWARDS_ALL` says. A target's ``unsupported_params`` in the config narrows what its
provider declares (an OpenAI-compatible server without ``logprobs``)::

    caps = capabilities_of(provider).refusing(target.unsupported_params)
    caps.refusal(body)   # None, or the Refusal naming the first parameter it cannot honour

The gateway checks every target against the request before sending it there (see
:mod:`lmdeck.gateway.routing.eligibility`): a target that cannot honour a parameter in use
is skipped, and a request no target can honour is refused with a 400 naming the parameter.

The same check applies to each row of a ``/v1/batches`` batch (its rows run through the
pipeline: :mod:`lmdeck.gateway.batches.rows`), whose refusal becomes the row's error line;
``/v1/files`` and ``/v1/moderations`` (answered by the guardrails) call no target, so no
provider declares them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lmdeck.protocol.parameters import Endpoint, endpoint_of, parameters_in_use

#: Every endpoint, every parameter: the upstream receives the request as sent and decides.
ALL = None


@dataclass(frozen=True)
class Refusal:
    """Why a target cannot serve a request: an endpoint it does not offer (``param`` None) or a parameter."""

    endpoint: Endpoint
    param: str | None = None

    @property
    def code(self) -> str:
        return "unsupported_endpoint" if self.param is None else "unsupported_parameter"


@dataclass(frozen=True)
class Capabilities:
    """The endpoints a target offers and, for each, the parameters it honours (``None``: all of them).

    >>> caps = Capabilities({"chat": frozenset({"temperature"})})
    >>> caps.refusal(ChatCompletionRequest.model_validate(
    ...     {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}))
    Refusal(endpoint='chat', param='logprobs')
    """

    params: Mapping[Endpoint, frozenset[str] | None]
    refused: frozenset[str] = field(default_factory=frozenset)
    #: Public protocols besides chat the target speaks itself, so that a request that came in through
    #: one may reach it as sent (``"responses"``: OpenAI's ``/v1/responses``; ``"messages"``:
    #: Anthropic's Messages API, see :mod:`lmdeck.pipeline.native`); any other is translated into chat.
    native: frozenset[str] = field(default_factory=frozenset)

    def honours(self, endpoint: Endpoint, param: str) -> bool:
        if endpoint not in self.params or param in self.refused:
            return False
        if param.partition(".")[0] in self.refused:
            return False
        honoured = self.params[endpoint]
        return honoured is None or param in honoured

    def refusal(self, body: BaseModel) -> Refusal | None:
        """The first reason this target cannot serve ``body``, or None when it can."""
        endpoint = endpoint_of(body)
        if endpoint not in self.params:
            return Refusal(endpoint)
        for param in parameters_in_use(body):
            if not self.honours(endpoint, param):
                return Refusal(endpoint, param)
        return None

    def refusing(self, params: Iterable[str]) -> Capabilities:
        """These capabilities less ``params`` (names as in requests: ``logprobs``, ``stream_options.include_usage``)."""
        extra = frozenset(params)
        if not extra:
            return self
        return Capabilities(self.params, self.refused | extra, self.native)


FORWARDS_ALL = Capabilities({"chat": ALL, "completions": ALL, "embeddings": ALL})


def capabilities_of(provider: Any) -> Capabilities:
    """A provider's declared capabilities; one built before providers declared them forwards everything."""
    declare = getattr(provider, "capabilities", None)
    if declare is None:
        return FORWARDS_ALL
    caps = declare()
    assert isinstance(caps, Capabilities), f"{type(provider).__name__}.capabilities() must return Capabilities"
    return caps
