"""The unit of training data: one chat example, rendered, and where it came from.

``prompt`` is the conversation rendered through the base model's chat template up to the
assistant's turn; ``completion`` is the answer the model should learn, closed by the template's
end token (the loss covers the completion only). ``messages`` and ``answer`` are the same
conversation before rendering (PII already masked), what an evaluation through a route sends and
expects::

    ChatExample(prompt="<|user|>How many r's in 'carrot'?<|end|><|assistant|>",
                completion="c-a-r(1)-r(2)-o-t: 2<|end|>", stratum="count", trace_id=None, source="manual",
                messages=[{"role": "user", "content": "How many r's in 'carrot'?"}], answer="c-a-r(1)-r(2)-o-t: 2")
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.registry import DatasetRow

#: Where a row came from: a stored trace's own answer, a person's correction, or an uploaded row.
Source = Literal["trace", "correction", "manual"]


class ChatExample(BaseModel):
    """One line of ``train.jsonl`` / ``validation.jsonl``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    completion: str
    stratum: str | None = None
    trace_id: str | None = None
    source: Source = "manual"
    messages: list[dict[str, str]] = Field(default_factory=list)
    answer: str = ""

    def as_row(self, stratify_by: str | None = None) -> DatasetRow:
        """The example as a dataset row to evaluate on: ``input`` the chat messages, ``expected`` the answer;
        ``metadata`` its source and (under ``stratify_by``, else ``stratum``) its stratum."""
        metadata: dict[str, Any] = {"source": self.source}
        if self.stratum is not None:
            metadata[stratify_by or "stratum"] = self.stratum
        return DatasetRow(
            input={"messages": self.messages}, expected=self.answer, metadata=metadata, trace_id=self.trace_id
        )
