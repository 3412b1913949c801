"""Diffs between two prompt versions: the template text line by line, and every other field."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.registry.sql import spec_dict
from lmdeck.registry.versions import Version


def _template_text(spec: PromptVersionSpec) -> str:
    if spec.text is not None:
        return spec.text
    data = [{"role": m.get("role"), "content": m.get("content")} for m in spec.messages or []]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def prompt_diff(old: Version[PromptVersionSpec], new: Version[PromptVersionSpec]) -> dict[str, Any]:
    """``{"template": unified diff, "changes": {field: {"from": ..., "to": ...}}}``.

    >>> # prompt_diff(v1, v2)["template"] -> "--- support-reply v1\\n+++ support-reply v2\\n@@ ..."
    """
    lines = difflib.unified_diff(
        _template_text(old.spec).splitlines(keepends=True),
        _template_text(new.spec).splitlines(keepends=True),
        fromfile=f"{old.name} v{old.version}",
        tofile=f"{new.name} v{new.version}",
    )
    before, after = spec_dict(old.spec), spec_dict(new.spec)
    changes = {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if key not in ("messages", "text") and before.get(key) != after.get(key)
    }
    return {
        "name": new.name,
        "from_version": old.version,
        "to_version": new.version,
        "template": "".join(lines),
        "changes": changes,
    }


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff: a line of the old template beside a line of the new one.

    ``tag`` is ``equal``, ``replace``, ``delete`` (only ``old``) or ``insert`` (only ``new``); line
    numbers count from 1 and are None on the side that has no line.
    """

    tag: Literal["equal", "replace", "delete", "insert"]
    old_number: int | None
    old: str | None
    new_number: int | None
    new: str | None


def side_by_side(old: Version[PromptVersionSpec], new: Version[PromptVersionSpec]) -> list[DiffRow]:
    """The two versions' template texts aligned line by line (``difflib.SequenceMatcher``'s opcodes).

    >>> # [r.tag for r in side_by_side(v1, v2)] -> ["equal", "replace", "insert"]
    """
    a = _template_text(old.spec).splitlines()
    b = _template_text(new.spec).splitlines()
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            has_old, has_new = i < i2, j < j2
            row_tag = tag if has_old and has_new else ("delete" if has_old else "insert")
            rows.append(
                DiffRow(
                    row_tag,  # type: ignore[arg-type]
                    i + 1 if has_old else None,
                    a[i] if has_old else None,
                    j + 1 if has_new else None,
                    b[j] if has_new else None,
                )
            )
    return rows
