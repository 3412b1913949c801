"""Wire schemas of the registry API (``/api/registry/...``): what a model or prompt version declares,
what ``lmdeck apply`` files declare, and the request bodies; responses are the records' ``to_dict()``.

The server validates with these and the Python client builds its requests with them::

    spec = ModelVersionSpec(provider="openai", model="gpt-4o-mini", metrics={"accuracy": 0.91})
    body = spec.model_dump(mode="json", by_alias=True, exclude_none=True)   # POST .../versions
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.access import OwnershipFields
from lmdeck.protocol.headers import check_url
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.secrets import SecretReference

#: Names of registered models, prompts, datasets and their aliases/labels.
REGISTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
RegistryName = Annotated[str, Field(pattern=REGISTRY_NAME)]
VariableType = Literal["string", "number", "integer", "boolean", "list", "object", "any"]


class VariableSpec(BaseModel):
    """A declared prompt variable; ``customer: string`` is short for ``{type: string}``."""

    model_config = ConfigDict(extra="forbid")

    type: VariableType = "string"
    required: bool = True
    default: Any = None
    description: str | None = None


class PromptVersionSpec(BaseModel):
    """One immutable prompt version: chat ``messages`` or a ``text`` template (Jinja2, sandboxed)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="in `lmdeck apply` files: the version declared"
    )
    messages: list[dict[str, Any]] | None = None
    text: str | None = None
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict, description="default request fields (temperature...)")
    route: str | None = Field(default=None, description="route called when the request names none")
    commit_message: str | None = None

    @field_validator("variables", mode="before")
    @classmethod
    def _variable_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_template(self) -> PromptVersionSpec:
        if (self.messages is None) == (self.text is None):
            raise ValueError("a prompt version has either `messages` (chat) or `text`, not both or neither")
        return self


class LineageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, description="dataset version trained on: 'name@version' or its hash")
    training_job: str | None = None
    parent_version: int | None = Field(default=None, ge=1, le=INT64_MAX)


class ModelVersionSpec(BaseModel):
    """One immutable model version: what serves it and where it came from."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="in `lmdeck apply` files: the version declared"
    )
    provider: str = "openai"
    model: str | None = Field(default=None, description="the upstream model name")
    base_url: str | None = None
    api_key: SecretReference | None = Field(
        default=None, description="admin-written versions only; others name an admin-defined `credential`"
    )
    credential: str | None = Field(
        default=None, description="name of a credential under `credentials:` that the gateway attaches"
    )
    artifact_path: str | None = Field(default=None, description="a local model artifact instead of an upstream")
    base_model: str | None = None
    adapter: str | None = None
    quantization: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, description="default request fields (temperature...)")
    options: dict[str, Any] = Field(default_factory=dict, description="provider-specific options")
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: LineageSpec = Field(default_factory=LineageSpec)
    description: str | None = None

    @field_validator("base_url")
    @classmethod
    def _sendable_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_url(url)
        return url

    @model_validator(mode="after")
    def _has_a_source(self) -> ModelVersionSpec:
        if not self.model and not self.artifact_path:
            raise ValueError("a model version needs `model` (the upstream model) or `artifact_path`")
        return self


VersionSpecT = TypeVar("VersionSpecT", ModelVersionSpec, PromptVersionSpec)


class VersionedSpec(BaseModel, Generic[VersionSpecT]):
    """A registered model or prompt declared for `lmdeck apply`: its versions and where its pointers point.

    Both kinds are the same idea: immutable versions and named, movable pointers to them (a model's
    ``aliases``, a prompt's ``labels``); :attr:`pointers` reads either without asking which kind.
    """

    model_config = ConfigDict(extra="forbid")

    name: RegistryName
    description: str | None = None
    versions: list[VersionSpecT] = Field(default_factory=list)

    @property
    def pointers(self) -> dict[str, int]:
        """Pointer name → version number (the kind's ``aliases`` or ``labels``)."""
        raise NotImplementedError


class ModelSpec(VersionedSpec[ModelVersionSpec]):
    """A registered model declared for `lmdeck apply`: its versions and where its aliases point."""

    aliases: dict[RegistryName, int] = Field(default_factory=dict)

    @property
    def pointers(self) -> dict[str, int]:
        return self.aliases


class PromptSpec(VersionedSpec[PromptVersionSpec]):
    """A prompt declared for `lmdeck apply`: its versions and where its labels point."""

    labels: dict[RegistryName, int] = Field(default_factory=dict)

    @property
    def pointers(self) -> dict[str, int]:
        return self.labels


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


class DatasetRow(BaseModel):
    """One example: what goes in, what should come out, and where it came from."""

    model_config = ConfigDict(extra="forbid")

    input: Any
    expected: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None


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
    corrections: Literal["none", "feedback", "annotations"] = Field(
        default="none", description="take each row's expected output from feedback corrections or annotation labels"
    )
    keep_uncorrected: bool = Field(default=True, description="keep rows whose trace has no correction")
