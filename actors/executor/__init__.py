"""Executor(S): idempotent order placement, ack/fill/timeout tracking, settlement by query."""

from actors.executor.config import ExecutorConfig
from actors.executor.logic import ExecutorLogic
from actors.executor.orders import TrackedOrder, client_order_id

__all__ = ["ExecutorConfig", "ExecutorLogic", "TrackedOrder", "client_order_id"]
