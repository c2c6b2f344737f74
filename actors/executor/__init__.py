"""Executor(S): idempotent order placement, ack/fill/timeout tracking, settlement by query."""

from arbor.actors.executor.config import ExecutorConfig
from arbor.actors.executor.logic import ExecutorLogic
from arbor.actors.executor.orders import TrackedOrder, client_order_id

__all__ = ["ExecutorConfig", "ExecutorLogic", "TrackedOrder", "client_order_id"]
