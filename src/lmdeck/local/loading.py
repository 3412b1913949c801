"""Loading local models from disk: never from the network.

A generative model directory holds a ``transformers`` checkpoint (``config.json`` and
``model.safetensors``), a ``tokenizer.json`` and optionally ``generation_config.json``.
Everything is read with ``local_files_only``; nothing is ever downloaded::

    lm = load_causal_lm(DEMO_MODEL_DIR, name="demo", device=resolve_device("auto"), quantize="int8")
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, PreTrainedModel

from lmdeck.local.chat_template import END, PAD
from lmdeck.local.errors import ModelLoadError
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.quantize import QUANTIZERS

__all__ = ["MODEL_LOAD_LOCK", "ModelLoadError", "load_causal_lm", "resolve_device"]

#: Held by every ``from_pretrained`` of lmdeck's models. transformers builds a model's modules on the
#: ``meta`` device under process-wide patches before it loads the weights, so two loads in two threads at
#: once (the demo model, and MiniLM for the cache, a guardrail or a learned route) can leave one of them
#: with meta tensors ("Cannot copy out of meta tensor"); loads take turns instead.
MODEL_LOAD_LOCK = threading.Lock()


def resolve_device(setting: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cpu``/``cuda``/``cuda:1`` are taken as given."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"local.device is {setting!r} but CUDA is not available: set local.device to cpu or auto")
    return device


def _default_temperature(model_dir: Path) -> float:
    """The temperature used when a request sends none, from ``generation_config.json`` as transformers reads
    it: greedy unless ``do_sample`` is true (then its ``temperature``, 1.0 by default)."""
    path = model_dir / "generation_config.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    return float(data.get("temperature", 1.0)) if data.get("do_sample", False) else 0.0


def load_causal_lm(model_dir: Path, *, name: str, device: torch.device, quantize: str = "none") -> LocalCausalLM:
    """Load a causal LM, its tokenizer and generation defaults from ``model_dir``."""
    for required in ("config.json", "tokenizer.json"):
        if not (model_dir / required).exists():
            raise ModelLoadError(
                f"model {name!r}: {model_dir / required} is missing; point local.model_dir at a checkpoint"
            )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if quantize != "none" and device.type != "cpu":
        raise ModelLoadError(f"local.quantize={quantize} runs on the CPU only: set local.device to cpu")
    with MODEL_LOAD_LOCK:
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32, attn_implementation="sdpa"
        )
    model.eval()
    model = QUANTIZERS[quantize](model)
    model.to(device)  # type: ignore[arg-type]
    end = tokenizer.token_to_id(END)
    config_eos = model.config.eos_token_id
    eos = {end} if end is not None else set()
    eos |= set(config_eos if isinstance(config_eos, list) else [config_eos] if config_eos is not None else [])
    pad = tokenizer.token_to_id(PAD)
    if pad is None:
        pad = int(model.config.pad_token_id or 0)
    context = int(getattr(model.config, "max_position_embeddings", 0) or getattr(model.config, "n_positions", 1024))
    return LocalCausalLM(
        name=name,
        model=model,
        tokenizer=tokenizer,
        eos_ids=frozenset(int(e) for e in eos),
        pad_id=pad,
        context_length=context,
        default_temperature=_default_temperature(model_dir),
        device=device,
    )
