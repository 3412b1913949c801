"""The render sandbox's limits, in this process (the worker processes are tested with registry.rendering)."""

from __future__ import annotations

import pytest

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.sandbox import RenderLimits
from lmdeck.protocol.templates import PromptLimitError, PromptTemplate


def test_the_limits_are_configurable() -> None:
    tight = RenderLimits(max_output_chars=10)
    template = PromptTemplate(PromptVersionSpec(text="{{ name }}", variables={"name": "string"}))
    assert template.render_pieces({"name": "x" * 10}, tight) == {"text": "x" * 10}
    with pytest.raises(PromptLimitError, match="output_chars"):
        template.render_pieces({"name": "x" * 11}, tight)
