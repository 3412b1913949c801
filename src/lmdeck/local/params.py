"""What a request asks of the sampler (importable without PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass

#: The most alternatives a request may ask for at each position (OpenAI's limit for ``top_logprobs``).
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class SamplingParams:
    """How one request wants its tokens chosen. ``temperature == 0`` means greedy.

    ``logprobs`` asks for the log-probability of every generated token and of the ``logprobs`` most
    likely alternatives at its position (``0``: the chosen token only; ``None``: no log-probabilities);
    ``prompt_logprobs`` asks the same of every prompt token after the first. ``max_tokens=0`` only
    scores the prompt (with ``prompt_logprobs``) and generates nothing.

    >>> SamplingParams(max_tokens=16, temperature=0.7, top_p=0.9, seed=42, stop=("\\n",)).greedy
    False
    """

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past the end token (benchmarks want a fixed length)
    logprobs: int | None = None
    prompt_logprobs: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 0 or (self.max_tokens == 0 and self.prompt_logprobs is None):
            raise ValueError("max_tokens must be at least 1 (0 only to score the prompt with prompt_logprobs)")
        if self.temperature < 0:
            raise ValueError("temperature must be 0 or more")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        for name, value in (("logprobs", self.logprobs), ("prompt_logprobs", self.prompt_logprobs)):
            if value is not None and not 0 <= value <= MAX_TOP_LOGPROBS:
                raise ValueError(f"{name} must be between 0 and {MAX_TOP_LOGPROBS}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
