"""The filter language of ``lmdeck datasets from-traces``: ``route=demo status=ok since=7d``.

A filter is terms ``key OP value`` separated by spaces (quote a value that has
spaces: ``tag="needs review"``), with OP one of ``= != > >= < <=``. Each key is
a :class:`FilterKey` in a :class:`TraceFilterParser`; a key either narrows the
store query or adds a predicate checked on each trace, so another part of
lmdeck (evaluation's ``feedback<=0``) adds its key without touching this one. ``skill=count``
matches a request that carried ``metadata: {"skill": "count"}`` or the tag ``skill:count``::

    parser = TraceFilterParser.default()
    parser.add("feedback", FilterKey(ops=(">=",), predicate=lambda op, value: ...))
    query, predicates = parser.parse("route=demo status=ok since=24h")
"""

from __future__ import annotations

import operator
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import TraceFilterError, TraceQuery, parse_status, parse_time

Predicate = Callable[[TraceRecord], bool]
_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(>=|<=|!=|=|>|<)(.*)$", re.S)
_RELATIVE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def filter_error(message: str) -> APIError:
    return APIError(400, f"filter: {message}", param="filter", code="invalid_filter")


def parse_when(value: str, key: str) -> float:
    """Epoch seconds from ``7d`` / ``24h`` / ``30m`` (that long ago), epoch seconds or ISO 8601."""
    relative = _RELATIVE.match(value)
    if relative:
        return time.time() - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        return parse_time(value, key)
    except TraceFilterError as exc:
        raise filter_error(f"{exc}; or a duration such as 7d, 24h, 30m") from None


QueryUpdate = Callable[[str, str], dict[str, Any]]
PredicateFactory = Callable[[str, str], Predicate]


@dataclass(frozen=True)
class FilterKey:
    """How one key filters: ops in ``query_ops`` narrow the store query, the others add a ``predicate``."""

    query: QueryUpdate | None = None
    predicate: PredicateFactory | None = None
    ops: tuple[str, ...] = ("=",)
    query_ops: tuple[str, ...] = ("=",)


def _field_equals(field: str) -> QueryUpdate:
    return lambda op, value: {field: value}


def _number_predicate(attribute: str) -> PredicateFactory:
    def make(op: str, value: str) -> Predicate:
        try:
            limit = float(value)
        except ValueError:
            raise filter_error(f"{attribute}{op}{value}: expected a number") from None
        compare = OPS[op]
        return lambda record: compare(float(getattr(record, attribute) or 0), limit)

    return make


def _status_query(op: str, value: str) -> dict[str, Any]:
    try:
        status, errors = parse_status(value)
    except TraceFilterError as exc:
        raise filter_error(str(exc)) from None
    return {"status": status, "errors": errors}


def _latency_query(op: str, value: str) -> dict[str, Any]:
    try:
        return {"min_latency_ms": float(value)}
    except ValueError:
        raise filter_error(f"latency{op}{value}: expected milliseconds") from None


def request_metadata(record: TraceRecord) -> dict[str, Any]:
    """The ``metadata`` object the request carried (OpenAI's field), {} when none was kept."""
    body = record.request_body
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _labelled(name: str) -> PredicateFactory:
    """``name=value``: the request carried ``metadata.<name> = value`` or the tag ``<name>:<value>``
    (the tag survives when bodies are not kept)."""

    def make(op: str, value: str) -> Predicate:
        def matches(record: TraceRecord) -> bool:
            return str(request_metadata(record).get(name)) == value or f"{name}:{value}" in record.tags

        return matches if op == "=" else lambda record: not matches(record)

    return make


def _not_equal(attribute: str) -> PredicateFactory:
    return lambda op, value: lambda record: str(getattr(record, attribute)) != value


class TraceFilterParser:
    """Filter keys by name; :meth:`parse` turns a filter into a store query plus predicates."""

    def __init__(self) -> None:
        self._keys: dict[str, FilterKey] = {}

    def add(self, key: str, spec: FilterKey) -> None:
        self._keys[key] = spec

    def keys(self) -> list[str]:
        return sorted(self._keys)

    @classmethod
    def default(cls) -> TraceFilterParser:
        parser = cls()
        # key: (TraceQuery field, TraceRecord attribute)
        equal_keys = {
            "route": ("route", "route"),
            "model": ("model", "upstream_model"),
            "prompt": ("prompt", "prompt_name"),
            "user": ("user", "user"),
            "key": ("key_id", "key_id"),
            "team": ("team_id", "team_id"),
        }
        for key, (field, attribute) in equal_keys.items():
            parser.add(key, FilterKey(query=_field_equals(field), predicate=_not_equal(attribute), ops=("=", "!=")))
        parser.add("tag", FilterKey(query=_field_equals("tag")))
        parser.add("skill", FilterKey(predicate=_labelled("skill"), ops=("=", "!="), query_ops=()))
        parser.add("status", FilterKey(query=_status_query, predicate=_number_predicate("status_code"), ops=tuple(OPS)))
        parser.add("since", FilterKey(query=lambda op, v: {"since": parse_when(v, "since")}))
        parser.add("until", FilterKey(query=lambda op, v: {"until": parse_when(v, "until")}))
        parser.add(
            "latency",
            FilterKey(
                query=_latency_query,
                predicate=_number_predicate("latency_ms"),
                ops=(">=", ">", "<", "<="),
                query_ops=(">=",),
            ),
        )
        return parser

    def parse(self, text: str, *, limit: int = 1000) -> tuple[TraceQuery, list[Predicate]]:
        try:
            terms = shlex.split(text)
        except ValueError as exc:
            raise filter_error(f"cannot split {text!r}: {exc}") from None
        fields: dict[str, Any] = {}
        predicates: list[Predicate] = []
        for term in terms:
            match = _TERM.match(term)
            if not match:
                raise filter_error(f"{term!r} is not 'key OP value' (OP is one of = != > >= < <=)")
            key, op, value = match.groups()
            spec = self._keys.get(key)
            if spec is None:
                raise filter_error(f"unknown key {key!r} (known: {', '.join(self.keys())})")
            if op not in spec.ops:
                raise filter_error(f"{key} takes {' '.join(spec.ops)}, not {op}")
            if spec.query is not None and op in spec.query_ops:
                fields.update({k: v for k, v in spec.query(op, value).items() if v is not None})
            elif spec.predicate is not None:
                predicates.append(spec.predicate(op, value))
        try:
            query = replace(TraceQuery(limit=min(limit, 1000)), **fields)
        except TraceFilterError as exc:
            raise filter_error(str(exc)) from None
        return query, predicates
