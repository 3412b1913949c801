"""The cache key: which requests may share an answer.

Two requests share a cached answer only when all of these are equal:

- the **canonical request**: the body as the upstream will see it (model/route, messages,
  tools, tool_choice, sampling parameters, response_format, stop, seed, n, logprobs and any
  other field, known or not), as sorted JSON with unset fields left out. Fields that cannot
  change the answer are left out: ``stream``/``stream_options`` (a hit replays either way),
  ``user`` and ``metadata`` (labels for the caller's own bookkeeping) and lmdeck's ``tags``;
- the **bundle hash** (:mod:`lmdeck.registry.bundle`): the route's configuration, the
  registry model versions and the prompt version, so moving a prompt label, an alias or
  editing the route makes every older entry unreachable;
- the **scope**: the tenant, per team by default (``key`` or ``global`` by config);
- the **vary** parts: what steps before the cache phase put in :data:`CACHE_VARY`, name to
  digest. The guardrails put the digest of the request's guardrail policy there (the input
  and output attachments of its route, team and key with their definitions), so requests
  under different policies never share an answer and a policy change makes older entries
  unreachable. A request with no vary parts keys as if the field did not exist.

    scope = cache_scope(principal, "team")                  # 'team:t_1'
    key = cache_key("chat", "gpt-4o", body, bundle_hash, scope)   # 64 hex digits
    key = cache_key("chat", "gpt-4o", body, bundle_hash, scope, {"guardrails": "9f2c..."})

The semantic cache matches the user's words only: :func:`semantic_parts` splits a chat
request into its exact *shape* (everything but the user turns' text, digested like the key:
a differing tool, response_format or system prompt never matches) and the user text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from lmdeck.pipeline.context import Slot
from lmdeck.pipeline.principal import Principal

#: Who may share entries: the caller's team (its key when it has none), the caller's key, everyone.
CacheScopeKind = Literal["team", "key", "global"]

#: Request fields that never change the answer; left out of the key.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "tags"})

#: Bumped when the canonical form changes, so entries of an older form are never matched.
KEY_VERSION = 1

#: Extra parts of the cache key, ``{name: digest}``, put by steps that run before the cache phase
#: (the guardrails' ``guard_input`` puts ``"guardrails"``); the cache steps read it when keying.
CACHE_VARY: Slot[dict[str, str]] = Slot("cache.vary")


def cache_scope(principal: Principal | None, kind: CacheScopeKind) -> str:
    """The tenant an entry belongs to: ``team:<id>``, ``key:<id>``, ``global`` or ``anonymous``.

    A team-scoped caller without a team is scoped to its key, never to everyone.
    """
    if kind == "global":
        return "global"
    if principal is None:
        return "anonymous"
    if kind == "team" and principal.team_id:
        return f"team:{principal.team_id}"
    return f"key:{principal.key_id}"


def canonical_request(body: BaseModel) -> dict[str, Any]:
    """The request's fields that can change its answer, as JSON-ready values, unset ones left out."""
    data: dict[str, Any] = body.model_dump(mode="json", exclude_none=True)
    return {name: value for name, value in data.items() if name not in IGNORED_FIELDS}


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _material(
    kind: str, route: str, bundle_hash: str | None, scope: str, request: dict[str, Any], vary: Mapping[str, str] | None
) -> dict[str, Any]:
    material = {
        "v": KEY_VERSION,
        "kind": kind,
        "route": route,
        "bundle": bundle_hash,
        "scope": scope,
        "request": request,
    }
    if vary:
        material["vary"] = dict(vary)
    return material


def cache_key(
    kind: str,
    route: str,
    body: BaseModel,
    bundle_hash: str | None,
    scope: str,
    vary: Mapping[str, str] | None = None,
) -> str:
    """The sha256 (64 hex digits) naming the exact answer to ``body`` on ``route`` for ``scope``
    under the ``vary`` parts (:data:`CACHE_VARY`; None or empty: none)."""
    return _digest(_material(kind, route, bundle_hash, scope, canonical_request(body), vary))


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def semantic_parts(
    kind: str,
    route: str,
    body: BaseModel,
    bundle_hash: str | None,
    scope: str,
    vary: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``(shape, text)`` of a chat request: the sha256 of everything but the user turns' text (the
    ``vary`` parts included, as in :func:`cache_key`), and that text (the user turns joined by blank
    lines). Requests match semantically only within one shape.

    A user turn with anything besides text (an image) keeps that part in the shape.
    """
    request = canonical_request(body)
    texts: list[str] = []
    messages = []
    for message in request.get("messages", []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            texts.append(_user_text(content))
            rest = (
                [p for p in content if not (isinstance(p, dict) and p.get("type") == "text")]
                if isinstance(content, list)
                else []
            )
            message = {**message, "content": rest}
        messages.append(message)
    request["messages"] = messages
    shape = _digest(_material(kind, route, bundle_hash, scope, request, vary))
    return shape, "\n\n".join(texts)
