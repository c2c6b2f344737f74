"""Runtimes that run actor logic: a deterministic scheduler and a pykka thread runtime."""

from actors.runtime.clock import HandlerClock, SimClock, WallClock
from actors.runtime.deterministic import DeterministicRuntime
from actors.runtime.dispatcher import Dispatcher, Observer, id_source
from actors.runtime.threaded import ThreadedRuntime, group_of

__all__ = ["DeterministicRuntime", "HandlerClock", "Dispatcher", "Observer", "SimClock", "ThreadedRuntime", "WallClock",
           "group_of", "id_source"]
