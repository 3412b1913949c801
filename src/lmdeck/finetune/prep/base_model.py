"""The base model a dataset is prepared for: its name, directory, tokenizer and chat template.

Token lengths are counted with the model's own ``tokenizer.json`` and prompts rendered with its
chat template, so the lengths a data card reports are the lengths the training worker sees::

    base = load_base_model("demo")                       # the bundled model
    base = load_base_model("my-finetune", model_dir=Path("/srv/models"))
    base.count_tokens(["<|user|>hi<|end|><|assistant|>hello<|end|>"])   # [27]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from lmdeck.local.catalog import ModelCatalog, UnknownLocalModel
from lmdeck.local.chat_template import ChatTemplate


class BaseModelError(LookupError):
    """The base model cannot be used for preparation; the message names the fix."""


@dataclass(frozen=True)
class BaseModelInfo:
    """A local generative model's name, directory, tokenizer and chat template."""

    name: str
    directory: Path
    tokenizer: Tokenizer
    template: ChatTemplate = field(default_factory=ChatTemplate)

    @classmethod
    def from_directory(cls, name: str, directory: Path) -> BaseModelInfo:
        """The model in ``directory`` (which must hold a ``tokenizer.json``); raises BaseModelError."""
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise BaseModelError(f"base model {name!r}: {path} is missing; point at a checkpoint with a tokenizer.json")
        return cls(name=name, directory=directory, tokenizer=Tokenizer.from_file(str(path)))

    @property
    def template_layout(self) -> str:
        """The chat template's layout for one user turn, as the data card records it."""
        return self.template.render([{"role": "user", "content": "{content}"}]) + "{answer}" + self.template.end

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` (already rendered through the template), in order."""
        return [len(encoding.ids) for encoding in self.tokenizer.encode_batch(list(texts))]


def load_base_model(name: str, *, model_dir: Path | None = None) -> BaseModelInfo:
    """A local model by name, found as the engine finds it (built-ins, then ``model_dir/<name>``).

    Raises BaseModelError naming the known models when there is none, or when it is an embedding model.
    """
    try:
        spec = ModelCatalog(model_dir=model_dir).find(name)
    except UnknownLocalModel as exc:
        raise BaseModelError(str(exc)) from None
    if spec.task != "generate":
        raise BaseModelError(f"base model {name!r} is an embedding model: fine-tune a generative one such as demo")
    return BaseModelInfo.from_directory(name, spec.path)
