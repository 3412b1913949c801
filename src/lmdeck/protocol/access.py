"""Wire schemas of the access-control admin API (``/api/keys``, ``/api/teams``, ``/api/budgets``, ``/api/spend``,
``/api/audit``, ``/api/secrets``), shared by the server and the Python client.

Request bodies reject unknown fields, so a misspelt field is a 400 naming it
rather than a silently ignored setting.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from lmdeck.money import MICROS_PER_DOLLAR
from lmdeck.protocol.headers import control_problem
from lmdeck.protocol.limits import MAX_EPOCH_SECONDS, MAX_PER_MINUTE, MAX_SECONDS
from lmdeck.protocol.patch import PatchBody

#: What a key may do; see :data:`ROLE_ORDER` in :mod:`lmdeck.pipeline.principal`.
Role = Literal["admin", "developer", "viewer", "inference"]
#: Whom a budget limits: one key, or every key of a team.
Scope = Literal["key", "team"]
#: A budget's window: a UTC day, a UTC calendar month, or for ever.
Period = Literal["day", "month", "total"]
#: Who may read a resource: its owning team only, or every team.
Visibility = Literal["team", "shared"]
#: What a spend report is grouped by.
GroupBy = Literal["key", "team", "user", "route", "tag", "model"]

Name = Field(min_length=1, max_length=200)
Tag = str


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Rules(_Body):
    allowed_models: list[str] | None = Field(default=None, description="routes (models) allowed; null: all")
    allowed_tags: list[Tag] | None = Field(default=None, description="request tags allowed; null: all")
    rpm: int | None = Field(default=None, ge=1, le=MAX_PER_MINUTE, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, le=MAX_PER_MINUTE, description="tokens per minute")


class KeyCreate(_Rules):
    name: str = Name
    role: Role = Field(default="inference", description="admin, developer, viewer, or inference (only /v1/*)")
    team_id: str | None = Field(default=None, min_length=1, max_length=200, description="a team id or name")
    user_id: str | None = Field(default=None, min_length=1, max_length=200, description="a user id or name")
    expires_in: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="seconds from now until the key expires"
    )
    expires_at: float | None = Field(
        default=None, ge=0, le=MAX_EPOCH_SECONDS, description="when the key expires (Unix time)"
    )


class KeyUpdate(PatchBody, _Rules):
    clearable: ClassVar[frozenset[str]] = frozenset(
        {"allowed_models", "allowed_tags", "rpm", "tpm", "team_id", "user_id", "expires_at"}
    )

    name: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=200)
    role: Role | SkipJsonSchema[None] = None
    team_id: str | None = Field(default=None, min_length=1, max_length=200, description="a team id or name")
    user_id: str | None = Field(default=None, min_length=1, max_length=200, description="a user id or name")
    expires_at: float | None = Field(
        default=None, ge=0, le=MAX_EPOCH_SECONDS, description="when the key expires (Unix time); null: never"
    )


class KeyRotate(_Body):
    grace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description="how long the old key keeps working (default: policy.rotation_grace)",
    )


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    prefix: str | None = Field(description="the key's first characters, to tell it apart")
    state: Literal["active", "expired", "revoked"]
    team_id: str | None
    user_id: str | None
    created_at: float
    created_by: str | None
    expires_at: float | None
    revoked_at: float | None
    allowed_models: list[str] | None
    allowed_tags: list[str] | None
    rpm: int | None
    tpm: int | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown this once, never again")


class KeyList(BaseModel):
    data: list[KeyOut]


class TeamCreate(_Rules):
    name: str = Name
    metadata: dict[str, Any] = Field(default_factory=dict)


class TeamUpdate(PatchBody, _Rules):
    clearable: ClassVar[frozenset[str]] = frozenset({"allowed_models", "allowed_tags", "rpm", "tpm"})

    name: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | SkipJsonSchema[None] = None


class TeamOut(BaseModel):
    id: str
    name: str
    created_at: float
    allowed_models: list[str] | None
    allowed_tags: list[str] | None
    rpm: int | None
    tpm: int | None
    metadata: dict[str, Any]


class TeamList(BaseModel):
    data: list[TeamOut]


class UserCreate(_Body):
    name: str = Name
    email: str | None = Field(default=None, max_length=320)
    team_id: str | None = Field(default=None, min_length=1, max_length=200, description="a team id or name")


class UserOut(BaseModel):
    id: str
    name: str
    email: str | None
    team_id: str | None
    created_at: float


class UserList(BaseModel):
    data: list[UserOut]


class BudgetPut(_Body):
    scope: Scope
    subject_id: str = Field(min_length=1, description="the key id or team id")
    period: Period
    limit_usd: Decimal | None = Field(
        default=None,
        ge=0,
        le=10**12,
        allow_inf_nan=False,
        description="US dollars per period, to the nearest micro-dollar",
    )
    limit_micros: int | None = Field(
        default=None, ge=0, le=10**18, description="the limit in micro-dollars, exactly (instead of limit_usd)"
    )
    soft_limit: float | None = Field(
        default=None, gt=0, le=1, description="share of the limit that raises an alert (default policy.soft_limit)"
    )

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetPut:
        if (self.limit_usd is None) == (self.limit_micros is None):
            raise ValueError("send exactly one of limit_usd (dollars) or limit_micros (micro-dollars)")
        return self

    def micros(self) -> int:
        """The limit in micro-dollars (``limit_usd`` rounded half to even to a micro-dollar)."""
        if self.limit_micros is not None:
            return self.limit_micros
        assert self.limit_usd is not None
        return int((self.limit_usd * MICROS_PER_DOLLAR).to_integral_value(rounding=ROUND_HALF_EVEN))


class BudgetOut(BaseModel):
    id: str
    scope: Scope
    subject_id: str
    period: Period
    limit_usd: float
    limit_micros: int = Field(description="the limit in micro-dollars (exact)")
    soft_limit: float
    created_at: float
    updated_at: float
    spent: float = Field(description="settled spend in the current period, US dollars")
    reserved: float = Field(description="worst-case cost held by requests still running, US dollars")
    remaining: float
    spent_micros: int = Field(description="spent, in micro-dollars (exact)")
    reserved_micros: int = Field(description="reserved, in micro-dollars (exact)")
    remaining_micros: int = Field(description="remaining, in micro-dollars (exact)")
    window_start: float
    window_end: float | None


class BudgetList(BaseModel):
    data: list[BudgetOut]


class AlertOut(BaseModel):
    kind: Literal["soft_limit", "exhausted"]
    budget: dict[str, Any]
    spent: float
    spent_micros: int
    window_start: float
    at: float


class AlertList(BaseModel):
    data: list[AlertOut]


class SpendRow(BaseModel):
    group: str | None = Field(description="the key, team, user, route, tag or model; null: not attributed")
    cost: float = Field(description="US dollars")
    cost_micros: int = Field(description="micro-dollars (exact)")
    requests: int
    input_tokens: int
    output_tokens: int
    cache_hits: int | None = Field(
        default=None, description="requests answered by the response cache; null when grouped by user or tag"
    )
    cache_hit_rate: float | None = Field(default=None, description="cache_hits / requests (0 to 1)")
    saved_tokens: int | None = Field(default=None, description="tokens cache hits did not send upstream")
    saved: float | None = Field(default=None, description="US dollars cache hits saved (the upstream calls' cost)")
    saved_micros: int | None = Field(default=None, description="micro-dollars cache hits saved (exact)")


class SpendReport(BaseModel):
    by: str
    period: str
    since: float
    until: float | None
    total_cost: float = Field(description="US dollars")
    total_cost_micros: int = Field(description="micro-dollars (exact)")
    total_saved: float = Field(default=0.0, description="US dollars the response cache saved in the window")
    total_saved_micros: int = Field(default=0, description="micro-dollars the response cache saved (exact)")
    data: list[SpendRow]


class AuditEntryOut(BaseModel):
    seq: int
    at: float
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    data: list[AuditEntryOut]


class AuditVerdictOut(BaseModel):
    ok: bool
    entries: int
    first_bad: int | None
    problem: str | None


class SecretPut(_Body):
    value: str = Field(min_length=1, max_length=16384)

    @field_validator("value")
    @classmethod
    def _sendable(cls, value: str) -> str:
        problem = control_problem(value)
        if problem:
            # Provider secrets are sent in headers, where a line break cannot go.
            raise ValueError(f"the secret {problem}: send it without the trailing newline")
        return value


class SecretOut(BaseModel):
    name: str
    created_at: float
    updated_at: float


class SecretList(BaseModel):
    data: list[SecretOut]


class OwnershipFields(_Body):
    """Who owns a resource created with this body (see :mod:`lmdeck.policy.ownership`)."""

    team: str | None = Field(
        default=None, description="the owning team's id or name; default: the caller's team (admins may name any)"
    )
    visibility: Visibility | None = Field(
        default=None, description="'team' (default: the owning team only) or 'shared' (every team may read it)"
    )


class OwnershipUpdate(OwnershipFields):
    """``PATCH`` body: share or unshare (the owning team or an admin), or give to another team (admins).

    ``{"team": null}`` gives the resource to the default team; leaving ``team`` out keeps it.
    """

    @property
    def team_given(self) -> bool:
        return "team" in self.model_fields_set
