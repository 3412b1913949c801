"""Weight quantization for CPU inference, chosen by ``settings.local.quantize``.

``int8`` is PyTorch's dynamic quantization: every ``nn.Linear`` gets int8 weights and
quantizes its activations on the fly; embeddings and norms stay in float32::

    model = QUANTIZERS["int8"](model)

PyTorch deprecates ``torch.ao.quantization`` in favour of torchao, but nothing else yet gives int8
on a CPU at speed: measured on the demo model's shapes (8x128 by 128x336, one thread), torchao 0.18's
``Int8DynamicActivationInt8WeightConfig`` ran about 8,000 times slower than float32 and
``Int8WeightOnlyConfig`` about 2,000 times, and ``torch._weight_int8pack_mm`` 30 to 100 times. So this
module keeps the deprecated call and silences that one deprecation here, until a replacement is fast.
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
        # PyTorch announces that quantized tensor types and torch.ao.quantization will move to torchao; they
        # still work as pinned here, and torchao's CPU path is far too slow (see the module docstring).
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        quantized: PreTrainedModel = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return quantized


QUANTIZERS: dict[str, Quantizer] = {"none": no_quantization, "int8": int8_dynamic}
