"""The operator surface: HTTP API, live events, metrics, liveness files, dashboard and daily report."""

from arbor.adapters.operator.events import EventHub, EventStream, Webhook
from arbor.adapters.operator.liveness import EngineCycle, ErrorCounter, LivenessFiles
from arbor.adapters.operator.metrics import ClusterMetrics
from arbor.adapters.operator.server import OperatorConfigError, OperatorServer, OperatorSurface, token_from_env
from arbor.adapters.operator.view import ClusterFacts, ClusterView, CommandError, OperatorView

__all__ = ["ClusterFacts", "ClusterMetrics", "ClusterView", "CommandError", "EngineCycle", "ErrorCounter", "EventHub", "EventStream",
           "LivenessFiles", "OperatorConfigError", "OperatorServer", "OperatorSurface", "OperatorView", "Webhook", "token_from_env"]
