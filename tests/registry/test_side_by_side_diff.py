"""The side-by-side diff of two prompt versions' templates (``lmdeck.registry.diff.side_by_side``)."""

from __future__ import annotations

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.registry.diff import side_by_side
from lmdeck.registry.versions import Version


def _version(number: int, spec: PromptVersionSpec) -> Version[PromptVersionSpec]:
    return Version("prompt", "greet", number, spec, "digest", 0.0, "key:test")


def test_rows_align_equal_changed_removed_and_added_lines() -> None:
    old = _version(1, PromptVersionSpec(text="Hello {{ name }}\nBe brief.\nBye\nP.S."))
    new = _version(2, PromptVersionSpec(text="Hello {{ name }}\nBe thorough.\nBye\nThanks\nRegards"))
    rows = side_by_side(old, new)
    assert [(r.tag, r.old_number, r.new_number) for r in rows] == [
        ("equal", 1, 1),
        ("replace", 2, 2),
        ("equal", 3, 3),
        ("replace", 4, 4),
        ("insert", None, 5),
    ]
    assert (rows[1].old, rows[1].new) == ("Be brief.", "Be thorough.")
    assert rows[4].old is None and rows[4].new == "Regards"


def test_chat_messages_are_compared_as_their_yaml_lines() -> None:
    old = _version(1, PromptVersionSpec(messages=[{"role": "system", "content": "terse"}]))
    new = _version(3, PromptVersionSpec(messages=[{"role": "system", "content": "verbose"}]))
    changed = [r for r in side_by_side(old, new) if r.tag != "equal"]
    assert [(r.old, r.new) for r in changed] == [("  content: terse", "  content: verbose")]


def test_a_removed_tail_is_deleted_rows_only_on_the_left() -> None:
    old = _version(1, PromptVersionSpec(text="a\nb\nc"))
    new = _version(2, PromptVersionSpec(text="a"))
    assert [(r.tag, r.old, r.new) for r in side_by_side(old, new)] == [
        ("equal", "a", "a"),
        ("delete", "b", None),
        ("delete", "c", None),
    ]
