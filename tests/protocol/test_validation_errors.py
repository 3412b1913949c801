"""lmdeck.protocol.errors: the param and message a validation error is reported with."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from lmdeck.protocol.errors import validation_param


class Message(BaseModel):
    content: str | list[str]
    count: int = 0


def errors_of(data: object) -> list[object]:
    with pytest.raises(ValidationError) as caught:
        Message.model_validate(data, strict=True)
    return list(caught.value.errors())


def test_one_error_keeps_its_whole_location() -> None:
    assert validation_param(errors_of({"content": "x", "count": "1"})) == ("count", "Input should be a valid integer")


def test_a_union_reports_the_field_and_what_each_member_wanted() -> None:
    param, message = validation_param(errors_of({"content": 5}))
    assert param == "content"
    assert message == "Input should be a valid string or Input should be a valid list"


def test_fastapi_body_prefix_is_left_out() -> None:
    error = {"loc": ("body", "name"), "msg": "Field required"}
    assert validation_param([error]) == ("name", "Field required")


def test_fastapi_query_and_path_prefixes_are_left_out() -> None:
    assert validation_param([{"loc": ("query", "limit"), "msg": "too small"}]) == ("limit", "too small")
    assert validation_param([{"loc": ("path", "version"), "msg": "bad"}]) == ("version", "bad")
