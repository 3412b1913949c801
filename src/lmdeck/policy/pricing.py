"""What a request costs: a price table per upstream model, counted in integer micro-dollars.

    prices = PriceTable.from_settings(settings)
    price = prices.price("gpt-4o-2024-08-06")       # the gpt-4o row: dated snapshots match their family
    price.cost(Usage(input_tokens=1200, output_tokens=300, cached_tokens=1000))   # micro-dollars (int)

Prices are configured in US dollars per 1M tokens (:class:`~lmdeck.settings.ModelPrice`) and
held as :class:`Price`: integer micro-dollars per 1M tokens, so a cost is computed exactly and
rounded once, half to even, to a whole micro-dollar (:func:`lmdeck.money.micros_for`).

Input tokens are priced by kind: plain input, cache reads (OpenAI's ``cached_tokens``,
Anthropic's ``cache_read_input_tokens``: 0.1x input for Anthropic), and Anthropic's cache
writes (``cache_creation_input_tokens``: 1.25x input for the 5-minute cache, 2x for the 1-hour
cache). OpenAI charges nothing extra to write its cache, so its rows price writes as input.

The built-in rows are the providers' published list prices (2025) for common hosted models;
``policy.pricing`` in the config overrides or adds rows, keyed by ``model`` or
``provider:model``. A model the table does not know (a self-hosted one: the ``local``
provider, a vLLM or Ollama server) costs 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from lmdeck.money import Micros, micros_for, to_micros
from lmdeck.policy.metering import Usage
from lmdeck.settings import ModelPrice, Settings


@dataclass(frozen=True)
class Price:
    """One model's prices in micro-dollars per 1M tokens (US dollars per 1M tokens times a million).

    >>> Price.of(ModelPrice(input="3", output="15")).cost(Usage(input_tokens=1000, output_tokens=100))
    4500
    """

    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int

    @classmethod
    def of(cls, row: ModelPrice) -> Price:
        write = row.input if row.cache_write is None else row.cache_write
        return cls(
            input=to_micros(row.input),
            output=to_micros(row.output),
            cache_read=to_micros(row.input if row.cached_input is None else row.cached_input),
            cache_write=to_micros(write),
            cache_write_1h=to_micros(write if row.cache_write_1h is None else row.cache_write_1h),
        )

    @property
    def free(self) -> bool:
        return not (self.input or self.output or self.cache_read or self.cache_write or self.cache_write_1h)

    def cost(self, usage: Usage) -> Micros:
        """What ``usage`` costs, rounded half to even to a micro-dollar."""
        total = max(usage.input_tokens, 0)
        read = min(max(usage.cached_tokens, 0), total)
        written = min(max(usage.cache_write_tokens, 0), total - read)
        written_1h = min(max(usage.cache_write_1h_tokens, 0), total - read - written)
        plain = total - read - written - written_1h
        scaled = (
            plain * self.input
            + read * self.cache_read
            + written * self.cache_write
            + written_1h * self.cache_write_1h
            + max(usage.output_tokens, 0) * self.output
        )
        return micros_for(scaled)

    def bound(self, prompt_tokens: int, output_tokens: int, *, cache_writes: bool = False) -> Micros:
        """The most a request of up to ``prompt_tokens`` in and ``output_tokens`` out can cost, rounded up:
        every prompt token at the dearest input price it may be charged (a cache write when ``cache_writes``)."""
        dearest = max(self.input, self.cache_write, self.cache_write_1h) if cache_writes else self.input
        return micros_for(prompt_tokens * dearest + output_tokens * self.output, round_up=True)


FREE = Price(input=0, output=0, cache_read=0, cache_write=0, cache_write_1h=0)

#: Providers that run on hardware you own: nothing to pay per token.
SELF_HOSTED_PROVIDERS = frozenset({"local"})


def _openai(input: str, output: str, cached: str | None = None) -> ModelPrice:
    # OpenAI's prompt cache costs nothing to write: writes are priced as input.
    return ModelPrice(input=Decimal(input), output=Decimal(output), cached_input=Decimal(cached) if cached else None)


def _anthropic(input: str, output: str, read: str | None = None, write: str | None = None) -> ModelPrice:
    """Anthropic's rule: cache reads 0.1x input, 5-minute writes 1.25x, 1-hour writes 2x (unless listed)."""
    base = Decimal(input)
    return ModelPrice(
        input=base,
        output=Decimal(output),
        cached_input=Decimal(read) if read else base / 10,
        cache_write=Decimal(write) if write else base * Decimal("1.25"),
        cache_write_1h=base * 2,
    )


DEFAULT_PRICES: dict[str, ModelPrice] = {
    # OpenAI
    "gpt-5": _openai("1.25", "10.00", "0.125"),
    "gpt-5-mini": _openai("0.25", "2.00", "0.025"),
    "gpt-5-nano": _openai("0.05", "0.40", "0.005"),
    "gpt-4.1": _openai("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": _openai("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _openai("0.10", "0.40", "0.025"),
    "gpt-4o": _openai("2.50", "10.00", "1.25"),
    "gpt-4o-mini": _openai("0.15", "0.60", "0.075"),
    "gpt-4-turbo": _openai("10.00", "30.00"),
    "gpt-4": _openai("30.00", "60.00"),
    "gpt-3.5-turbo": _openai("0.50", "1.50"),
    "o1": _openai("15.00", "60.00", "7.50"),
    "o1-mini": _openai("1.10", "4.40", "0.55"),
    "o3": _openai("2.00", "8.00", "0.50"),
    "o3-mini": _openai("1.10", "4.40", "0.55"),
    "o4-mini": _openai("1.10", "4.40", "0.275"),
    "text-embedding-3-small": _openai("0.02", "0"),
    "text-embedding-3-large": _openai("0.13", "0"),
    "text-embedding-ada-002": _openai("0.10", "0"),
    # Anthropic
    "claude-opus-4-5": _anthropic("5.00", "25.00"),
    "claude-opus-4-1": _anthropic("15.00", "75.00"),
    "claude-opus-4": _anthropic("15.00", "75.00"),
    "claude-sonnet-4-5": _anthropic("3.00", "15.00"),
    "claude-sonnet-4": _anthropic("3.00", "15.00"),
    "claude-haiku-4-5": _anthropic("1.00", "5.00"),
    "claude-3-7-sonnet": _anthropic("3.00", "15.00"),
    "claude-3-5-sonnet": _anthropic("3.00", "15.00"),
    "claude-3-5-haiku": _anthropic("0.80", "4.00"),
    "claude-3-opus": _anthropic("15.00", "75.00"),
    "claude-3-haiku": _anthropic("0.25", "1.25", read="0.03", write="0.30"),
}


#: Prices looked up by (provider, model) remembered at once; past this the memo starts again.
MEMO_SIZE = 1024


class PriceTable:
    """Prices by upstream model, with the built-in rows under the configured ones."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None, *, defaults: bool = True) -> None:
        self._rows: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if defaults else {}
        self._rows.update(overrides or {})
        self._memo: dict[tuple[str | None, str], Price] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        return cls(settings.policy.pricing)

    def rows(self) -> dict[str, ModelPrice]:
        return dict(self._rows)

    def price(self, model: str | None, provider: str | None = None) -> Price:
        if not model:
            return FREE
        memo = (provider, model)
        found = self._memo.get(memo)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                # Names can come from upstream answers: a memo keyed by them must not grow for ever.
                self._memo.clear()
            row = self._find(model, provider)
            found = self._memo[memo] = FREE if row is None else Price.of(row)
        return found

    def _find(self, model: str, provider: str | None) -> ModelPrice | None:
        if provider and f"{provider}:{model}" in self._rows:
            return self._rows[f"{provider}:{model}"]
        if model in self._rows:
            return self._rows[model]
        if provider in SELF_HOSTED_PROVIDERS:
            return None
        bare = model.rsplit("/", 1)[-1]
        # A dated or suffixed snapshot ("gpt-4o-2024-08-06") is priced as its family: the longest match.
        family = max(
            (name for name in self._rows if bare == name or bare.startswith(name + "-")), key=len, default=None
        )
        return self._rows[family] if family else None

    def cost(self, model: str | None, usage: Usage, *, provider: str | None = None) -> Micros:
        """What ``usage`` of ``model`` costs, in micro-dollars."""
        return self.price(model, provider).cost(usage)
