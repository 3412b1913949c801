"""Request bodies of the registry API (``/api/registry/...``); responses are the records' ``to_dict()``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmdeck.policy.schemas import OwnershipFields
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.registry.datasets import DatasetRow
from lmdeck.registry.plan import Declared


class RegisterRequest(OwnershipFields):
    """Register a model or prompt: for the caller's team unless an admin names ``team``."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None


#: ``expected_version`` of a move: refuse it (409) unless the pointer is still where the caller saw it.
EXPECTED_VERSION = Field(
    default=None,
    ge=1,
    le=INT64_MAX,
    description="move only if the alias/label points at this version now (else 409 version_conflict)",
)


class MoveRequest(BaseModel):
    """Point an alias or label at a version."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=INT64_MAX)
    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = EXPECTED_VERSION


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = EXPECTED_VERSION


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _label_or_version(self) -> RenderRequest:
        if self.label is not None and self.version is not None:
            raise ValueError("give `label` or `version`, not both")
        return self


class DatasetCreateRequest(OwnershipFields):
    """A new version from rows; ``team``/``visibility`` apply when this creates the dataset."""

    rows: list[DatasetRow] = Field(min_length=1)
    description: str | None = None
    source: dict[str, Any] | None = None


class FromTracesRequest(OwnershipFields):
    """A new version from stored traces: the caller's team's traces (an admin chooses with ``team``)."""

    filter: str = ""
    limit: int = Field(default=1000, ge=1, le=100_000)
    description: str | None = None


class ApplyRequest(Declared):
    """A declared state (``routes``, ``models``, ``prompts``) and how to apply it."""

    dry_run: bool = False
    prune: bool = Field(default=False, description="also remove applied routes and aliases/labels not declared")
    plan_hash: str | None = Field(default=None, description="apply only if the plan is still the one with this hash")
