"""How Decimals are shown to people: the trade log, the operator API, reports and summaries.

Accounting keeps full precision (a weighted average entry price is a division, so PnL can end in
``...000000000000000000051``). What a person reads is rounded once, here: to the instrument's
step (``tick_size`` for prices, ``qty_step`` for quantities) when the caller knows it, else to
``DISPLAY_PLACES`` decimal places, with trailing zeros dropped and never in exponent form.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

DISPLAY_PLACES = 8  # the stated precision of quote amounts, ratios and prices without a known tick
_QUANTUM = Decimal(1).scaleb(-DISPLAY_PLACES)


def shown(value: Decimal, step: Decimal | None = None) -> Decimal:
    """``value`` rounded (half-even) to ``step``, or to ``DISPLAY_PLACES`` places without one."""
    if not value.is_finite():
        return value
    if step is not None and step > 0:
        return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step
    q = value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    return q.normalize() if q else Decimal(0)


def decimal_text(value: Decimal, step: Decimal | None = None) -> str:
    """``shown(value, step)`` as plain text: ``"-26.16"``, ``"526"``, ``"60000.1"``; never ``"5E+2"``."""
    return format(shown(value, step), "f")
