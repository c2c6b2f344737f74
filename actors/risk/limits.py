"""Loss limits: the daily loss from the UTC day's first equity, and the drawdown from the peak."""

from __future__ import annotations

from decimal import Decimal

import attrs

NS_PER_DAY = 86_400 * 1_000_000_000


@attrs.frozen(kw_only=True)
class LimitsSnapshot:
    """The anchors of the loss limits: the UTC day (days since the epoch), its starting equity,
    the peak equity, and the latched breaches."""

    day: int | None
    day_start_equity: Decimal
    peak_equity: Decimal
    daily_hit_day: int | None = None
    drawdown_hit: bool = False


class LossLimits:
    """Latched breaches: the daily loss stays hit for the rest of its UTC day; the drawdown stays
    hit until the peak is re-based (an operator's kill-switch reset acknowledges the loss)."""

    def __init__(self, starting_equity: Decimal, max_daily_loss_pct: Decimal, max_drawdown_pct: Decimal) -> None:
        self.max_daily_loss_pct = max_daily_loss_pct
        self.max_drawdown_pct = max_drawdown_pct
        self.day: int | None = None
        self.day_anchor = starting_equity
        self.peak = starting_equity
        self._daily_hit_day: int | None = None
        self.drawdown_hit = False

    def roll_day(self, equity: Decimal, now_ns: int) -> None:
        """Anchor the day at the equity before its first event is applied."""
        day = now_ns // NS_PER_DAY
        if day != self.day:
            self.day, self.day_anchor = day, equity

    @property
    def daily_loss_hit(self) -> bool:
        return self._daily_hit_day is not None and self._daily_hit_day == self.day

    def daily_pnl(self, equity: Decimal) -> Decimal:
        return equity - self.day_anchor

    def daily_pnl_pct(self, equity: Decimal) -> Decimal:
        return self.daily_pnl(equity) / self.day_anchor if self.day_anchor > 0 else Decimal("0")

    def drawdown_pct(self, equity: Decimal) -> Decimal:
        return (self.peak - equity) / self.peak if self.peak > 0 else Decimal("0")

    def observe(self, equity: Decimal, now_ns: int) -> list[tuple[str, str]]:
        """Update the peak; return ``(reason, detail)`` for each limit newly breached."""
        self.roll_day(equity, now_ns)
        self.peak = max(self.peak, equity)
        tripped: list[tuple[str, str]] = []
        daily = self.daily_pnl_pct(equity)
        if not self.daily_loss_hit and daily <= -self.max_daily_loss_pct:
            self._daily_hit_day = self.day
            tripped.append(("daily_loss", f"daily pnl {daily:.4%} breaches -{self.max_daily_loss_pct:.4%}"))
        drawdown = self.drawdown_pct(equity)
        if not self.drawdown_hit and drawdown >= self.max_drawdown_pct:
            self.drawdown_hit = True
            tripped.append(("drawdown", f"drawdown {drawdown:.4%} from peak {self.peak} breaches {self.max_drawdown_pct:.4%}"))
        return tripped

    def snapshot(self) -> LimitsSnapshot:
        return LimitsSnapshot(day=self.day, day_start_equity=self.day_anchor, peak_equity=self.peak,
                              daily_hit_day=self._daily_hit_day, drawdown_hit=self.drawdown_hit)

    def restore(self, snap: LimitsSnapshot) -> None:
        self.day, self.day_anchor, self.peak = snap.day, snap.day_start_equity, snap.peak_equity
        self._daily_hit_day, self.drawdown_hit = snap.daily_hit_day, snap.drawdown_hit

    def rebase_peak(self, equity: Decimal) -> None:
        self.peak = equity
        self.drawdown_hit = False
