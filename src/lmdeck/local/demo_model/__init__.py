"""The bundled demo checkpoint: weights, config and tokenizer, made by ``scripts/train_demo_model.py``."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent

__all__ = ["DEMO_MODEL_DIR"]
