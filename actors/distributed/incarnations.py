"""Incarnation numbers of the cluster's processes, from one counter the ClusterSupervisor keeps.

Every process the supervisor starts (the Coordinator, each Worker, each restart of either) gets
the next number: 1, 2, 3, ... across all nodes and across the runs of one state directory. The
number is the process's link epoch (a peer's newer epoch replaces its older one, so they must
only grow, which a wall clock does not promise) and the top of its message ids (see
``nodes.msg_id_base``), so no two processes ever issue the same id. The last number handed out
is written to ``<var_dir>/cluster/incarnation.json`` (atomically, fsynced) before it is used.
An unreadable file restarts the numbering at 1: numbers need only grow within a run, and a run
is one supervisor's life.
"""

from __future__ import annotations

import json
from pathlib import Path

from arbor.supervision.files import write_atomic
from loguru import logger

COUNTER_FILE = Path("cluster") / "incarnation.json"


class IncarnationCounter:
    """Runs in the ClusterSupervisor's process (its thespian thread): hands out incarnations."""

    def __init__(self, var_dir: str | Path) -> None:
        self.path = Path(var_dir) / COUNTER_FILE
        self._last = self._read()

    def _read(self) -> int:
        try:
            last = json.loads(self.path.read_text())["last"]
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.bind(actor="cluster-supervisor", event_type="incarnation_file").error(
                "unreadable incarnation counter {}, numbering restarts at 1: {}", self.path, exc)
            return 0
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            logger.bind(actor="cluster-supervisor", event_type="incarnation_file").error(
                "malformed incarnation counter {}, numbering restarts at 1", self.path)
            return 0
        return last

    def next(self) -> int:
        """The next incarnation, persisted before it is returned."""
        n = self._last + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"last": n}))
        self._last = n
        return n
