"""Secret references are admin-only: ``{"$env": ...}``, ``{"$secret": ...}`` and ``{"$vault": ...}`` resolve only
in what an admin wrote.

A reference tells the gateway to read a secret and send it upstream. Written by a developer
into a model version whose ``base_url`` is their own listener, ``{"$env": "LMDECK_ADMIN_KEY"}``
would hand them the admin key; so a reference is accepted only from the config file, the
admin API and ``lmdeck apply`` run by an admin. Everywhere else — model and prompt versions,
datasets, eval runs, experiments, feedback, any ``/api`` write a non-admin key makes — it is
refused with a 403 naming its JSON path::

    find_secret_refs({"versions": [{"api_key": {"$env": "X"}}]})     # ['versions.0.api_key']
    refuse_secret_refs(body, principal)                              # APIError(403) for a non-admin
"""

from __future__ import annotations

from typing import Any

from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError

#: Keys that make a JSON object a secret reference.
REFERENCE_KEYS = frozenset({"$env", "$secret", "$vault"})


def find_secret_refs(value: Any, path: str = "") -> list[str]:
    """The JSON paths (``a.0.b``; ``""`` for the root) of every object in ``value`` that is a secret reference."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            if REFERENCE_KEYS.intersection(item):
                found.append(where)
                continue
            stack.extend((f"{where}.{key}" if where else str(key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), child) for i, child in enumerate(item))
    return sorted(found)


def secret_ref_forbidden(path: str) -> APIError:
    field = path or "the request body"
    return APIError(
        403,
        f'{field}: only an admin may write a secret reference ({{"$env": ...}}, {{"$secret": ...}} or {{"$vault": ...}}); '
        "name a credential an admin defined under `credentials:` (a model version's `credential`), "
        "or ask an admin to write it",
        param=path or None,
        code="secret_ref_forbidden",
    )


def refuse_secret_refs(value: Any, principal: Principal, path: str = "") -> None:
    """Raise the 403 of :func:`secret_ref_forbidden` when a non-admin's ``value`` holds a reference."""
    if principal.role == "admin":
        return
    found = find_secret_refs(value, path)
    if found:
        raise secret_ref_forbidden(found[0])
