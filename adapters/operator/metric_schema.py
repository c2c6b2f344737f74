"""The one metric schema of both run modes: every ``/metrics`` family, its type, help and labels.

A dashboard built on one process keeps working on the multi-process cluster: a metric both modes
serve has the same name, type and label names in each (``BOTH``); a few exist only where they can
be measured (``SINGLE``: what is observed inside the one process, such as mailbox depths and
journal fsyncs; ``CLUSTER``: node processes). ``ClusterMetrics`` (one process) registers its
metrics from here and the multi-process ``NodeCollector`` builds its families from here, so a
name cannot drift between them; tests check each mode's ``/metrics`` against this table.

Counter names end in ``_total`` (the sample name; prometheus_client calls the family by the name
without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

SINGLE = "single"
CLUSTER = "cluster"
BOTH = frozenset({SINGLE, CLUSTER})
_ONLY_SINGLE = frozenset({SINGLE})
_ONLY_CLUSTER = frozenset({CLUSTER})

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FSYNC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


@attrs.frozen
class MetricSpec:
    name: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    modes: frozenset[str] = BOTH
    buckets: tuple[float, ...] = ()

    @property
    def family(self) -> str:
        """The family name prometheus_client exposes (a counter's without ``_total``)."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name


_SPECS = (
    # -- market data and orders, per symbol --------------------------------------------------
    MetricSpec("arbor_market_events_total", "counter", "Decoded market events", ("symbol", "venue")),
    MetricSpec("arbor_decode_failures_total", "counter", "Frames that could not be decoded", ("symbol", "venue")),
    MetricSpec("arbor_orders_total", "counter", "Order events by status (the cluster counts placed ones)", ("status",)),
    MetricSpec("arbor_fills_total", "counter", "Executions", ("symbol",)),
    MetricSpec("arbor_position_qty", "gauge", "Position quantity per symbol, signed by direction", ("symbol",)),
    MetricSpec("arbor_position_open", "gauge", "1 while a symbol's position is not FLAT", ("symbol",)),
    MetricSpec("arbor_symbol_up", "gauge", "1 while a symbol's subtree runs (not quarantined, its process fresh)",
               ("symbol",)),
    # -- Risk ---------------------------------------------------------------------------------
    MetricSpec("arbor_trading_state", "gauge", "Trading state per scope: 0 ACTIVE, 1 REDUCING, 2 HALTED "
               "(scope '*' is global)", ("scope",)),
    MetricSpec("arbor_kill_switch_engaged", "gauge", "1 while the kill switch is engaged"),
    MetricSpec("arbor_risk_approvals_total", "counter", "Actions Risk approved, by kind", ("kind",)),
    MetricSpec("arbor_risk_denials_total", "counter", "Actions Risk denied, by reason", ("reason",)),
    MetricSpec("arbor_equity_quote", "gauge", "Account equity as Risk books it"),
    MetricSpec("arbor_drawdown_ratio", "gauge", "Drawdown of equity from its peak (0.05 = 5%)"),
    MetricSpec("arbor_exposure_quote", "gauge", "Exposure, quote currency", ("kind",)),
    # -- observed inside the one process ------------------------------------------------------
    MetricSpec("arbor_tick_to_order_latency_seconds", "histogram",
               "From a market frame entering the runtime to the PlaceOrder it caused", modes=_ONLY_SINGLE,
               buckets=LATENCY_BUCKETS),
    MetricSpec("arbor_mailbox_depth_messages", "gauge", "Messages waiting in an actor's mailbox", ("actor",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_actor_failures_total", "counter", "Actor failures", ("actor_type",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_actor_restarts_total", "counter", "Actor restarts", ("actor_type",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_symbol_quarantines_total", "counter", "Symbols quarantined by supervision", ("symbol",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_poison_messages_total", "counter", "Messages set aside after crashing an actor twice",
               ("actor_type",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_dead_letters_total", "counter", "Messages without a handler or receiver", ("actor_type",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_order_rejects_total", "counter", "Venue rejections by reason", ("reason",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_realized_pnl_quote", "gauge", "Realized PnL net of fees since start, quote currency",
               ("symbol",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_unrealized_pnl_quote", "gauge", "Unrealized PnL at the last mark, quote currency", ("symbol",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_reconciliation_drift_qty", "gauge", "|venue qty - local qty| at the last reconciliation",
               ("symbol",), modes=_ONLY_SINGLE),
    MetricSpec("arbor_reconciliations_total", "counter", "Reconciliations by outcome", ("outcome",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_assumption_status", "gauge", "Health of a declared market assumption: "
               "-1 UNKNOWN, 0 OK, 1 DRIFTING, 2 BROKEN", ("symbol", "assumption")),
    MetricSpec("arbor_assumption_value", "gauge", "The measured statistic of a market assumption "
               "(at its last change, or the last operator-cycle sample)", ("symbol", "assumption")),
    MetricSpec("arbor_assumption_changes_total", "counter", "Health changes of market assumptions, "
               "by the status entered", ("symbol", "assumption", "status")),
    MetricSpec("arbor_market_data_age_seconds", "gauge", "Age of the newest market event per symbol", ("symbol",),
               modes=_ONLY_SINGLE),
    MetricSpec("arbor_journal_written_bytes_total", "counter", "Bytes appended to the journal", modes=_ONLY_SINGLE),
    MetricSpec("arbor_journal_fsync_seconds", "histogram", "Journal fsync latency", modes=_ONLY_SINGLE,
               buckets=FSYNC_BUCKETS),
    # -- the processes of a multi-process cluster ---------------------------------------------
    MetricSpec("arbor_node_up", "gauge", "1 while a node process is up and writing its status", ("node",),
               modes=_ONLY_CLUSTER),
    MetricSpec("arbor_node_status_age_seconds", "gauge", "Age of a node's status file", ("node",),
               modes=_ONLY_CLUSTER),
    MetricSpec("arbor_node_restarts_total", "counter", "Restarts of a node process by the cluster supervisor",
               ("node",), modes=_ONLY_CLUSTER),
    MetricSpec("arbor_node_rss_bytes", "gauge", "Resident memory of a node process", ("node",), modes=_ONLY_CLUSTER),
    MetricSpec("arbor_symbol_worker", "gauge", "1 for the worker slot a symbol is placed on", ("symbol", "worker"),
               modes=_ONLY_CLUSTER),
)

METRICS: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in _SPECS})


def in_mode(mode: str) -> tuple[MetricSpec, ...]:
    """The metrics a run mode serves, in schema order."""
    return tuple(s for s in _SPECS if mode in s.modes)


def register(name: str, registry: CollectorRegistry) -> Any:
    """The prometheus_client metric ``name`` of the schema, registered in ``registry``."""
    s = METRICS[name]
    if s.kind == "counter":
        return Counter(s.name, s.help, list(s.labels), registry=registry)
    if s.kind == "gauge":
        return Gauge(s.name, s.help, list(s.labels), registry=registry)
    return Histogram(s.name, s.help, list(s.labels), registry=registry, buckets=s.buckets)


def family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    """An empty family for ``name`` (a counter or gauge of the schema), for a scrape-time collector."""
    s = METRICS[name]
    if s.kind == "counter":
        return CounterMetricFamily(s.name, s.help, labels=list(s.labels))
    if s.kind == "gauge":
        return GaugeMetricFamily(s.name, s.help, labels=list(s.labels))
    raise ValueError(f"{name} is a {s.kind}: a collector builds counters and gauges only")
