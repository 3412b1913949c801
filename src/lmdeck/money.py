"""Money in lmdeck: whole micro-dollars (``int``, 1 = US$0.000001), dollars only at the edges.

Costs, budget limits, reservations, settlements, the ledger and spend reports all count
integer micro-dollars, so no sum or difference of them drifts (a budget's ``reserved`` after
any number of reserve/settle cycles is exactly 0). Dollars appear only where a person or a
client reads them: API JSON, the CLI, metrics and span attributes::

    to_micros("2.50")          # 2500000: parsed as a decimal, never through binary floating point
    to_micros(0.1)             # 100000: a float is read by its shortest decimal form, "0.1"
    dollars(2500000)           # 2.5: the float nearest the exact amount, for JSON
    format_usd(1234567)        # '$1.234567'

Prices are integer micro-dollars per million tokens (:data:`PER_MILLION`), so a cost is
``tokens * rate / 1_000_000`` micro-dollars, computed exactly and rounded once
(:func:`micros_for`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: An amount of money in whole micro-dollars.
Micros = int

MICROS_PER_DOLLAR = 1_000_000
#: Prices are per this many tokens.
PER_MILLION = 1_000_000


class MoneyError(ValueError):
    """An amount that is not a finite, non-negative number of dollars with at most 6 decimals."""


def to_micros(amount: Decimal | str | float | int) -> Micros:
    """``amount`` US dollars in micro-dollars; finer than a micro-dollar is refused, not rounded.

    Raises :class:`MoneyError` for a negative, infinite or too precise amount.
    """
    try:
        exact = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not an amount of dollars") from None
    if not exact.is_finite() or exact < 0:
        raise MoneyError(f"{amount!r} is not a non-negative, finite amount of dollars")
    micros = exact * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise MoneyError(f"{amount!r}: amounts have at most 6 decimal places (one micro-dollar)")
    return int(micros)


def dollars(micros: Micros) -> float:
    """``micros`` as US dollars for JSON: the float nearest the exact amount (its repr is the decimal)."""
    return micros / MICROS_PER_DOLLAR


def format_usd(micros: Micros, places: int = 6) -> str:
    """``micros`` as ``$d.dddddd`` (``places`` decimals, 0 to 6), by integer arithmetic."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_DOLLAR)
    digits = f"{fraction:06d}"[:places]
    return f"{sign}${whole:,}" + (f".{digits}" if places else "")


def micros_for(tokens_times_rate: int, *, round_up: bool = False) -> Micros:
    """Micro-dollars for a sum of ``tokens * rate`` (rates in micro-dollars per million tokens).

    Rounded half to even for what a request cost, or up (``round_up``) for a bound that must
    not be below the cost, such as a budget reservation.
    """
    whole, rest = divmod(tokens_times_rate, PER_MILLION)
    if round_up:
        return whole + (rest > 0)
    if rest * 2 > PER_MILLION or (rest * 2 == PER_MILLION and whole % 2):
        return whole + 1
    return whole
