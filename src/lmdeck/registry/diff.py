"""Diffs between two prompt versions: the template text line by line, and every other field."""

from __future__ import annotations

import difflib
from typing import Any

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
