"""The multi-process cluster's console summary and end-of-run verdict, read from the nodes'
status files (``<var_dir>/cluster/status/<node>.json``) as the launcher prints them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path


def node_status(var_dir: Path, name: str) -> dict:
    """A node's last status file, ``<var_dir>/cluster/status/<name>.json`` ({} if absent or unreadable)."""
    try:
        return json.loads((var_dir / "cluster" / "status" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def stopped_for_good(var_dir: Path, assignment: dict[int, tuple[str, ...]], run_id: str,
                     escalated: str = "") -> list[str]:
    """What stopped during run ``run_id`` and did not come back, as the Workers' last status files
    and the supervisor (``escalated``) tell it: a market source that died for good (its symbols
    HALTED), a quarantined symbol, a Worker past its restart intensity. Empty after a healthy run.
    (Status files of another run, left in the same ``--var-dir``, are not this run's.)"""
    out = []
    for slot, symbols in sorted(assignment.items()):
        st = node_status(var_dir, f"worker-{slot}")
        if st.get("run_id") != run_id:
            continue
        if st.get("market_failed"):
            out.append(f"worker-{slot} {st['market_failed']}; its symbols ({', '.join(symbols)}) are HALTED")
        for s, row in sorted(st.get("symbols", {}).items()):
            if row.get("health") == "QUARANTINED":
                out.append(f"symbol {s} quarantined (worker-{slot})")
    if escalated and "worker" in escalated:
        out.append(escalated)
    return out


def render_summary(var_dir: Path, assignment: dict[int, tuple[str, ...]]) -> str:
    coord = node_status(var_dir, "coordinator")
    risk = coord.get("risk", {})
    kill = risk.get("kill_switch", {})
    lines = [f"global={risk.get('global_state', '?')} kill_switch={'ENGAGED' if kill.get('engaged') else 'off'}"
             f"{' (' + str(kill.get('who')) + ': ' + str(kill.get('reason')) + ')' if kill.get('engaged') else ''}",
             f"{'symbol':<10} {'worker':>6} {'state':<9} {'health':<11} {'position':<9} {'qty':>10} "
             f"{'pnl':>11} {'events':>8} {'orders':>6} {'fills':>6}"]
    total: Decimal | None = Decimal(0)
    for slot, symbols in sorted(assignment.items()):
        w = node_status(var_dir, f"worker-{slot}")
        rows = w.get("symbols", {})
        for s in symbols:
            r = rows.get(s, {})
            at_risk = risk.get("symbols", {}).get(s, {})
            pnl = at_risk.get("pnl")  # Risk's: realized - fees + unrealized at the last mark
            total = total + Decimal(pnl) if total is not None and pnl is not None else None
            lines.append(f"{s:<10} {slot:>6} {at_risk.get('effective', '?'):<9} {r.get('health', 'DOWN'):<11} "
                         f"{r.get('position', '?'):<9} {r.get('qty', '-'):>10} {'?' if pnl is None else f'{Decimal(pnl):.2f}':>11} "
                         f"{r.get('events', 0):>8} {r.get('orders', 0):>6} {r.get('fills', 0):>6}")
    lines.append(f"{'total':<10} {'?' if total is None else f'{total:.2f}'} equity {risk.get('equity', '?')}")
    return "\n".join(lines)
