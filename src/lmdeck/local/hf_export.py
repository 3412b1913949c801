"""The demo checkpoint as a directory that transformers-based servers (vLLM) load as they are.

The bundled directory holds the weights, ``config.json`` and a bare ``tokenizer.json``: lmdeck's own
engine brings the chat template and the end token. A server that reads them from the checkpoint also
needs a ``tokenizer_config.json`` naming the special tokens and the chat template (``<|end|>`` ends
every turn and the answer)::

    python -m lmdeck.local.hf_export /srv/models/demo
    vllm serve /srv/models/demo --served-model-name demo --dtype float32 --max-model-len 512

Nothing is downloaded: the copy is made from the files in the package.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from lmdeck.local.chat_template import END, PAD, ROLE_TOKENS, UNKNOWN

#: The files of the bundled checkpoint a server loads (the rest are lmdeck's training records).
CHECKPOINT_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")

#: :class:`lmdeck.local.chat_template.ChatTemplate` as Jinja, the form transformers and vLLM apply.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    f"{{% if m['role'] in ['system', 'developer'] %}}{ROLE_TOKENS['system']}"
    f"{{% elif m['role'] == 'assistant' %}}{ROLE_TOKENS['assistant']}"
    f"{{% else %}}{ROLE_TOKENS['user']}{{% endif %}}"
    f"{{{{ m['content'] }}}}{END}"
    "{% endfor %}"
    f"{{% if add_generation_prompt %}}{ROLE_TOKENS['assistant']}{{% endif %}}"
)


def tokenizer_config(max_length: int = 512) -> dict[str, object]:
    """The ``tokenizer_config.json`` content: a fast tokenizer over ``tokenizer.json``, its special tokens
    and :data:`CHAT_TEMPLATE`; ``max_length`` is the context in tokens."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "eos_token": END,
        "pad_token": PAD,
        "unk_token": UNKNOWN,
        "chat_template": CHAT_TEMPLATE,
    }


def export_demo_model(out: Path, source: Path | None = None) -> Path:
    """Copy the checkpoint in ``source`` (default: the bundled demo model) into ``out`` with a
    ``tokenizer_config.json``; returns ``out``. Raises ``FileNotFoundError`` naming a missing file."""
    if source is None:
        from lmdeck.local.demo_model import DEMO_MODEL_DIR

        source = DEMO_MODEL_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} is missing: {source} is not a complete checkpoint")
        shutil.copyfile(source / name, out / name)
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m lmdeck.local.hf_export OUT``: write the servable copy into directory ``OUT``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lmdeck.local.hf_export OUT_DIR", file=sys.stderr)
        return 2
    print(export_demo_model(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
