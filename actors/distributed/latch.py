"""The kill-switch latch across Coordinator restarts, kept in a small file.

There is no state store wired into the cluster yet, so the latch lives in
``<var_dir>/cluster/kill_switch.json`` (written atomically: temp file, fsync, rename). The
Coordinator writes it whenever Risk engages or resets the kill switch; the ClusterSupervisor
writes it (engaged) when the Coordinator process dies; a starting Coordinator that finds it
engaged engages Risk's kill switch before anything else is handled. Only an operator reset
(``ResetKillSwitch`` with a reason) clears it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from arbor.supervision.files import write_atomic

LATCH_FILE = Path("cluster") / "kill_switch.json"


def latch_path(var_dir: str | Path) -> Path:
    return Path(var_dir) / LATCH_FILE


def read_latch(var_dir: str | Path) -> dict[str, Any]:
    """``{"engaged": bool, "who", "reason", "ts_ns"}``; an unreadable file counts as engaged (fail closed)."""
    path = latch_path(var_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"engaged": False, "who": "", "reason": "", "ts_ns": 0}
    except (OSError, ValueError) as exc:
        return {"engaged": True, "who": "cluster", "reason": f"unreadable kill-switch latch: {exc}", "ts_ns": 0}
    if not isinstance(data, dict) or not isinstance(data.get("engaged"), bool):
        return {"engaged": True, "who": "cluster", "reason": "malformed kill-switch latch", "ts_ns": 0}
    return data


def write_latch(var_dir: str | Path, engaged: bool, who: str, reason: str) -> None:
    path = latch_path(var_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"engaged": engaged, "who": who, "reason": reason, "ts_ns": time.time_ns()}
    write_atomic(path, json.dumps(data))
