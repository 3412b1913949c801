"""Schemathesis hooks for ``test_schemathesis.py`` (loaded by the ``st`` process through SCHEMATHESIS_HOOKS).

Every call carries the run's own admin key, except the calls that can take a key's access
away (changing, rotating or revoking a key): those carry a second, sacrificial admin key,
and a key id the run could lose (its own key's, the bootstrap admin's) is swapped for the
sacrificial key's own id. A sacrificial key that was revoked, demoted or restricted is
replaced with a new one, made with the bootstrap admin key, which no generated call carries.

The check ``no_gateway_fault`` fails on every 5xx but one kind: a 502, 503 or 504 in which the
gateway reports the failure of an upstream (error type ``upstream_error``, ``service_unavailable``
or ``timeout_error``) on a route the run made itself (``/api/registry/apply`` takes routes to
any upstream, which are then down or unknown): that is the right answer. On the routes to the
fake upstream (``demo`` and ``embed``) every 5xx fails the run.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import schemathesis

BASE_URL = os.environ["LMDECK_ST_BASE_URL"]
BOOTSTRAP_KEY = os.environ["LMDECK_ST_BOOTSTRAP_KEY"]
RUN_KEY = os.environ["LMDECK_ST_RUN_KEY"]
#: Key ids no generated call may change: the run's own key and the bootstrap admin's.
PROTECTED_IDS = frozenset(os.environ["LMDECK_ST_PROTECTED_KEY_IDS"].split(","))
#: Routes served by the fake upstream: no 5xx of any kind is right there.
FAKE_ROUTES = frozenset({"demo", "embed"})
#: Error types of the gateway's answers that report an upstream's failure.
UPSTREAM_FAILURES = frozenset({"upstream_error", "service_unavailable", "timeout_error"})
#: Operations that can take a key's access away.
RISKY = {("PATCH", "/api/keys/{key_id}"), ("POST", "/api/keys/{key_id}/rotate"), ("POST", "/api/keys/{key_id}/revoke")}


class Sacrificial:
    """The admin key risky calls carry; made again whenever a call may have cost it its access."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: str | None = None
        self.id: str | None = None

    def current(self) -> tuple[str, str]:
        with self.lock:
            if self.key is None or self.id is None:
                response = httpx.post(
                    f"{BASE_URL}/api/keys",
                    json={"name": "schemathesis sacrificial", "role": "admin"},
                    headers={"authorization": f"Bearer {BOOTSTRAP_KEY}"},
                    timeout=30,
                )
                response.raise_for_status()
                self.key, self.id = response.json()["key"], response.json()["id"]
            return self.key, self.id

    def spent(self) -> None:
        with self.lock:
            self.key = self.id = None


SACRIFICIAL = Sacrificial()


def _risky(case: Any) -> bool:
    return (case.method.upper(), case.operation.path) in RISKY


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    key = RUN_KEY
    if _risky(case):
        key, key_id = SACRIFICIAL.current()
        params = case.path_parameters or {}
        if str(params.get("key_id")) in PROTECTED_IDS:
            case.path_parameters = {**params, "key_id": key_id}
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    # Whatever a risky call did to the sacrificial key (revoked, rotated, demoted, expired), start afresh.
    if _risky(case):
        SACRIFICIAL.spent()


#: Anthropic's error types for an upstream's failure (``/v1/messages`` answers in Anthropic's shape).
ANTHROPIC_UPSTREAM_FAILURES = frozenset({"api_error", "overloaded_error"})


def _reports_upstream_failure(case: Any, response: Any) -> bool:
    if response.status_code not in (502, 503, 504):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    if body.get("model") in FAKE_ROUTES:
        return False
    try:
        error = response.json().get("error")
    except ValueError:
        return False
    # /v1/messages tells the same failures in Anthropic's error types.
    return isinstance(error, dict) and error.get("type") in UPSTREAM_FAILURES | ANTHROPIC_UPSTREAM_FAILURES


@schemathesis.check
def no_gateway_fault(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail on a 5xx, unless it reports the failure of an upstream the run itself configured."""
    if response.status_code < 500 or _reports_upstream_failure(case, response):
        return None
    raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")
