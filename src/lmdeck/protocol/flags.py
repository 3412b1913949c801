"""Wire schemas of feature flags (``/api/flags``): a flag, its targeting rules, its history, evaluations.

A flag, as declared in ``lmdeck.yaml`` (``flags:``, synced by ``lmdeck apply``) or put through the API::

    name: support-v2
    type: boolean                 # or string, number (multivariate)
    enabled: true                 # false: every request gets `default`
    default: false                # what a disabled flag serves (boolean: false)
    value: false                  # what an enabled flag serves when no rule matches (boolean: true)
    sticky: user                  # what a percentage hashes: user (else the key), key, team, conversation
    routes: [support]             # the routes it belongs to: their owners (and admins) may change it
    rules:                        # the first rule whose conditions all hold gives the value
      - {teams: [team_beta], value: true}
      - {headers: {x-beta: "1"}, value: true}
      - {percentage: 25, value: true}

Evaluation order, per request: a disabled flag serves ``default``; else the rules in order,
the first whose every condition holds (``keys``, ``teams``, ``users``, ``headers``, and
``percentage``) serves its ``value``; else the flag's ``value``. A ``percentage`` holds for
the subjects whose sticky point (a hash of the flag's name and the subject into [0, 1)) is
below ``percentage / 100``: the same subject always gets the same answer, and raising the
percentage only adds subjects.

A flag with ``kill_switch: true`` is the kill switch of its ``routes``: a request to one of
them for which the flag is on is refused with a 503 naming the flag.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from lmdeck.protocol.limits import INT64_MAX, INT64_MIN

#: A flag's value: a boolean, a string (a variation's name) or a number.
FlagValue = (
    StrictBool
    | Annotated[StrictStr, Field(max_length=1000)]
    | Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
)
FlagType = Literal["boolean", "string", "number"]
Sticky = Literal["user", "key", "team", "conversation"]
#: Why an evaluation gave its value.
Reason = Literal["disabled", "rule", "fallthrough"]
HistoryAction = Literal["created", "updated", "enabled", "disabled", "deleted"]

#: Flag names: letters, digits and ``. _ : @ -`` (they appear in URLs, metrics and templates).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def type_of(value: FlagValue) -> FlagType:
    """The flag type a value belongs to."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


class FlagRule(BaseModel):
    """One targeting rule: every condition given must hold; then the flag serves ``value``."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    keys: list[str] | None = Field(default=None, description="API key ids")
    teams: list[str] | None = Field(default=None, description="team ids")
    users: list[str] | None = Field(default=None, description="user ids (the request's `user`, else the key's user)")
    headers: dict[str, str] | None = Field(default=None, description="request headers and their exact values")
    percentage: float | None = Field(default=None, ge=0, le=100, description="the share of subjects, 0 to 100")
    value: FlagValue

    @model_validator(mode="after")
    def _has_condition(self) -> FlagRule:
        if all(c is None for c in (self.keys, self.teams, self.users, self.headers, self.percentage)):
            raise ValueError(
                "a rule needs a condition (keys, teams, users, headers or percentage); "
                "to serve one value to every request set the flag's `value`"
            )
        return self


class FlagSpec(BaseModel):
    """A named flag (see the module docstring for the evaluation order)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    type: FlagType = "boolean"
    description: str | None = None
    enabled: bool = True
    value: FlagValue | None = Field(default=None, description="served by an enabled flag when no rule matches")
    default: FlagValue | None = Field(default=None, description="served by a disabled flag")
    rules: list[FlagRule] = Field(default_factory=list, max_length=100)
    sticky: Sticky = "user"
    routes: list[str] = Field(default_factory=list, description="the routes it belongs to (their owners may change it)")
    kill_switch: bool = Field(default=False, description="refuse its routes' requests (503) while it is on")

    @model_validator(mode="after")
    def _typed(self) -> FlagSpec:
        if self.type == "boolean":
            if self.value is None:
                self.value = True
            if self.default is None:
                self.default = False
        for field_name in ("value", "default"):
            if getattr(self, field_name) is None:
                raise ValueError(f"a {self.type} flag needs `{field_name}`")
        found = [("value", self.value), ("default", self.default)]
        found += [(f"rules[{i}].value", rule.value) for i, rule in enumerate(self.rules)]
        for where, value in found:
            assert value is not None
            if type_of(value) != self.type:
                raise ValueError(f"{where}: {value!r} is not a {self.type}: give a {self.type} or change `type`")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where}: a number flag's values must be finite")
        if self.kill_switch:
            if self.type != "boolean":
                raise ValueError("a kill switch is a boolean flag: set `type: boolean`")
            if not self.routes:
                raise ValueError("a kill switch needs the routes it switches off: set `routes`")
        return self


class FlagRecord(BaseModel):
    """A stored flag: its spec, its version (one more per change) and who changed it last."""

    spec: FlagSpec
    version: int
    created_at: float
    created_by: str | None = None
    updated_at: float
    updated_by: str | None = None


class FlagHistoryEntry(BaseModel):
    """One change of a flag: the spec it left (None when deleted), by whom and when (Unix seconds)."""

    name: str
    version: int
    action: HistoryAction
    spec: FlagSpec | None
    actor: str | None
    at: float


class FlagContext(BaseModel):
    """The request a flag is evaluated for (``POST /api/flags/evaluate``): who calls and its headers."""

    model_config = ConfigDict(extra="forbid")

    key_id: str | None = None
    team_id: str | None = None
    user: str | None = None
    conversation_id: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class EvaluateRequest(BaseModel):
    """``POST /api/flags/evaluate``: evaluate ``flags`` (every flag when omitted) for ``context``."""

    model_config = ConfigDict(extra="forbid")

    context: FlagContext = Field(default_factory=FlagContext)
    flags: list[str] | None = None


class FlagEvaluation(BaseModel):
    """What a flag gave one request, and why: ``rule`` is the index of the matching rule."""

    name: str
    value: FlagValue
    reason: Reason
    rule: int | None = None
