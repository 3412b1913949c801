"""Small pieces every registry table module shares: ids, times, JSON, digests, the revision counter."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, text


def now() -> float:
    return round(time.time(), 6)


def new_id() -> str:
    """A 32-hex-digit id ordered by time (milliseconds first)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


def spec_dict(spec: BaseModel) -> dict[str, Any]:
    """A declared version as stored: JSON-ready, aliases as written (``$env``), ``version`` left out."""
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude={"version"})
    return data


def spec_digest(spec: BaseModel) -> str:
    """The digest naming a declared version's content; fields left at their defaults do not count,
    so a field added to the schema later does not change the digest of what was declared before."""
    return digest(spec.model_dump(mode="json", by_alias=True, exclude={"version"}, exclude_defaults=True))


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value`` (sorted keys)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def bump_revision(conn: Connection) -> None:
    """Mark the registry changed; gateways polling :func:`revision` reload their view."""
    conn.execute(text("UPDATE registry_revision SET revision = revision + 1 WHERE id = 1"))


def revision(conn: Connection) -> int:
    row = conn.execute(text("SELECT revision FROM registry_revision WHERE id = 1")).first()
    return int(row[0]) if row else 0
