"""The bounds every request value is held to: ASCII digits, 64-bit integers, finite numbers, shallow JSON."""

from __future__ import annotations

import math

import pytest

from lmdeck.protocol.limits import INT64_MAX, INT64_MIN, InputError, check_json, parse_int, parse_number


@pytest.mark.parametrize(
    ("text", "value"), [("12", 12), (" 7 ", 7), ("-3", -3), ("+4", 4), (str(INT64_MAX), INT64_MAX)]
)
def test_parse_int_reads_ascii_integers(text: str, value: int) -> None:
    assert parse_int(text, "n") == value


@pytest.mark.parametrize("text", ["١٢", "²", "1_000", "12.0", "1e3", "", "0x10", "٣"])
def test_parse_int_refuses_what_int_would_take_or_half_take(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_int(text, "limit")
    assert caught.value.param == "limit" and caught.value.status == 400


@pytest.mark.parametrize("text", [str(INT64_MAX + 1), str(INT64_MIN - 1), "9" * 5000])
def test_parse_int_refuses_integers_past_64_bits(text: str) -> None:
    with pytest.raises(InputError, match="from -9223372036854775808 to 9223372036854775807"):
        parse_int(text, "n")


def test_parse_int_applies_its_own_range() -> None:
    with pytest.raises(InputError, match="from 1 to 10"):
        parse_int("0", "n", lo=1, hi=10)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "١٢", "1_0", ""])
def test_parse_number_refuses_what_float_would_take(text: str) -> None:
    with pytest.raises(InputError):
        parse_number(text, "since")


def test_parse_number_reads_finite_ascii_numbers() -> None:
    assert parse_number("1.5e3", "x") == 1500.0 and parse_number("-.5", "x") == -0.5


def test_check_json_names_the_path_of_the_fault() -> None:
    with pytest.raises(InputError) as caught:
        check_json({"rows": [{"input": 1}, {"input": [0, 2**64]}]})
    assert caught.value.param == "rows.1.input.1"
    with pytest.raises(InputError, match="finite"):
        check_json({"x": math.inf})


def test_check_json_bounds_depth_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InputError, match="deeper than 64"):
        check_json({"a": deep})
    shallow: object = 1
    for _ in range(63):
        shallow = [shallow]
    check_json(shallow)


def test_check_json_takes_the_ordinary() -> None:
    check_json({"model": "m", "n": INT64_MAX, "m": INT64_MIN, "f": 1e308, "b": True, "z": None, "s": "x" * 10})
