"""The operator surface: HTTP API, live events, metrics, liveness files, dashboard and daily report."""

from arbor.adapters.operator.events import EventHub, EventStream, Webhook
from arbor.adapters.operator.liveness import EngineCycle, ErrorCounter, LivenessFiles
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.metrics import ClusterMetrics
from arbor.adapters.operator.server import (
    OperatorConfigError,
    OperatorLifecycle,
    OperatorServer,
    OperatorSurface,
    token_from_env,
)
from arbor.adapters.operator.view import ClusterView, CommandError, OperatorView, ViewSource

__all__ = ["ClusterFacts", "ClusterMetrics", "ClusterView", "CommandError", "EngineCycle", "ErrorCounter", "EventHub",
           "EventStream", "LivenessFiles", "OperatorConfigError", "OperatorLifecycle", "OperatorServer",
           "OperatorSurface", "OperatorView", "RuntimeSource", "ViewSource", "Webhook", "token_from_env"]
