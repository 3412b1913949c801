"""Version fields from the shell: ``key=value`` options and YAML files of a version's fields.

pairs(["temperature=0.2", "stop=[\"END\"]"], "--param")   # {"temperature": 0.2, "stop": ["END"]}
read_spec(Path("support-reply.yaml"))                        # the mapping, or typer.BadParameter
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml


def pairs(items: list[str], what: str) -> dict[str, Any]:
    """``key=value`` options; values are read as JSON when they parse (numbers, true, lists...)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {item!r}: write key=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def read_spec(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of version fields")
    return data
