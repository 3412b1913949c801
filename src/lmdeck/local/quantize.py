"""Weight quantization for CPU inference, chosen by ``settings.local.quantize``.

``int8`` is PyTorch's dynamic quantization: every ``nn.Linear`` gets int8 weights and
quantizes its activations on the fly; embeddings and norms stay in float32::

    model = QUANTIZERS["int8"](model)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from transformers import PreTrainedModel

Quantizer = Callable[[PreTrainedModel], PreTrainedModel]


def no_quantization(model: PreTrainedModel) -> PreTrainedModel:
    return model


def int8_dynamic(model: PreTrainedModel) -> PreTrainedModel:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # PyTorch announces that quantized tensor types will move to torchao; they still work as pinned here.
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized: PreTrainedModel = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return quantized


QUANTIZERS: dict[str, Quantizer] = {"none": no_quantization, "int8": int8_dynamic}
