"""The unit of training data: one chat example, rendered, and where it came from.

``prompt`` is the conversation rendered through the base model's chat template up to the
assistant's turn; ``completion`` is the answer the model should learn, closed by the template's
end token (the loss covers the completion only)::

    ChatExample(prompt="<|user|>How many r's in 'carrot'?<|end|><|assistant|>",
                completion="c-a-r(1)-r(2)-o-t: 2<|end|>", stratum="count", trace_id=None, source="manual")
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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
