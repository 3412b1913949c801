"""A LoRA adapter with random weights, for tests and benchmarks of adapter serving.

PEFT starts a LoRA's ``B`` matrices at zero (the adapter changes nothing until trained); here they
are drawn at random and scaled, so that the adapted model visibly answers differently from its
base. The directory is what PEFT's ``save_pretrained`` writes, as a trained adapter is::

    write_random_adapter(DEMO_MODEL_DIR, tmp / "a1", seed=1)   # adapter_config.json + adapter_model.safetensors
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

#: The demo model's (and any Llama's) projections a LoRA usually adapts.
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def write_random_adapter(
    base_dir: Path,
    out: Path,
    *,
    seed: int = 0,
    rank: int = 4,
    scale: float = 0.5,
    targets: Sequence[str] = LLAMA_TARGETS,
) -> Path:
    """Write a rank-``rank`` LoRA for the model in ``base_dir`` into ``out`` (B drawn from N(0, scale²))."""
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    model.save_pretrained(str(out))
    return out
