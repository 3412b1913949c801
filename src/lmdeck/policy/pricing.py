"""What a request costs: a price table per upstream model, in US dollars per 1M tokens.

    prices = PriceTable.from_settings(settings)
    prices.price("gpt-4o-2024-08-06")               # the gpt-4o row: dated snapshots match their family
    prices.cost("gpt-4o", input_tokens=1200, output_tokens=300, cached_tokens=1000)

The built-in rows are the providers' published list prices (2025) for common
hosted models; ``policy.pricing`` in the config overrides or adds rows, keyed
by ``model`` or ``provider:model``. A model the table does not know (a
self-hosted one: the ``local`` provider, a vLLM or Ollama server) costs 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from lmdeck.settings import ModelPrice, Settings

FREE = ModelPrice(input=0.0, output=0.0, cached_input=0.0)

#: Providers that run on hardware you own: nothing to pay per token.
SELF_HOSTED_PROVIDERS = frozenset({"local"})


def _p(input: float, output: float, cached: float | None = None) -> ModelPrice:
    return ModelPrice(input=input, output=output, cached_input=cached)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    # OpenAI
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-4": _p(30.00, 60.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00, 7.50),
    "o1-mini": _p(1.10, 4.40, 0.55),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    "text-embedding-ada-002": _p(0.10, 0.0),
    # Anthropic (cached input: cache reads)
    "claude-opus-4-5": _p(5.00, 25.00, 0.50),
    "claude-opus-4-1": _p(15.00, 75.00, 1.50),
    "claude-opus-4": _p(15.00, 75.00, 1.50),
    "claude-sonnet-4-5": _p(3.00, 15.00, 0.30),
    "claude-sonnet-4": _p(3.00, 15.00, 0.30),
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10),
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30),
    "claude-3-5-sonnet": _p(3.00, 15.00, 0.30),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08),
    "claude-3-opus": _p(15.00, 75.00, 1.50),
    "claude-3-haiku": _p(0.25, 1.25, 0.03),
}


class PriceTable:
    """Prices by upstream model, with the built-in rows under the configured ones."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None, *, defaults: bool = True) -> None:
        self._rows: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if defaults else {}
        self._rows.update(overrides or {})
        self._memo: dict[tuple[str | None, str], ModelPrice] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        return cls(settings.policy.pricing)

    def rows(self) -> dict[str, ModelPrice]:
        return dict(self._rows)

    def price(self, model: str | None, provider: str | None = None) -> ModelPrice:
        if not model:
            return FREE
        memo = (provider, model)
        found = self._memo.get(memo)
        if found is None:
            found = self._memo[memo] = self._find(model, provider)
        return found

    def _find(self, model: str, provider: str | None) -> ModelPrice:
        if provider and f"{provider}:{model}" in self._rows:
            return self._rows[f"{provider}:{model}"]
        if model in self._rows:
            return self._rows[model]
        if provider in SELF_HOSTED_PROVIDERS:
            return FREE
        bare = model.rsplit("/", 1)[-1]
        # A dated or suffixed snapshot ("gpt-4o-2024-08-06") is priced as its family: the longest match.
        family = max(
            (name for name in self._rows if bare == name or bare.startswith(name + "-")), key=len, default=None
        )
        return self._rows[family] if family else FREE

    def cost(
        self,
        model: str | None,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        provider: str | None = None,
    ) -> float:
        return cost_of(self.price(model, provider), input_tokens, output_tokens, cached_tokens)


def cost_of(price: ModelPrice, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
    cached = min(max(cached_tokens, 0), input_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = (input_tokens - cached) * price.input + cached * cached_price + output_tokens * price.output
    return total / 1_000_000
