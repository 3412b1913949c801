"""PATCH bodies: a field left out keeps its value, ``null`` clears it only where clearing means something.

``{"role": null}`` on a key has no meaning (a key always has a role); taken as "set it to
null" it would reach the store and fail there. A :class:`PatchBody` refuses it with a 400
naming the field, and its OpenAPI schema shows ``null`` only for the fields in ``clearable``::

    class KeyUpdate(PatchBody):
        clearable: ClassVar[frozenset[str]] = frozenset({"expires_at"})

        role: Role | SkipJsonSchema[None] = None     # may be changed, never cleared
        expires_at: float | None = None              # null: never expires
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class PatchBody(BaseModel):
    """Base of PATCH bodies (see the module docstring); unknown fields are refused too."""

    model_config = ConfigDict(extra="forbid")

    #: Fields for which ``null`` is a value: clearing it (no expiry, no limit...).
    clearable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_clearable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.clearable:
            raise ValueError(f"`{info.field_name}` cannot be null: leave it out to keep its current value")
        return value
