"""Runtimes that run actor logic: a deterministic scheduler and a pykka thread runtime."""

from arbor.actors.runtime.clock import HandlerClock, SimClock, WallClock
from arbor.actors.runtime.deterministic import DeterministicRuntime
from arbor.actors.runtime.dispatcher import Dispatcher, Observer, id_source
from arbor.actors.runtime.threaded import ThreadedRuntime, group_of

__all__ = ["DeterministicRuntime", "HandlerClock", "Dispatcher", "Observer", "SimClock", "ThreadedRuntime", "WallClock",
           "group_of", "id_source"]
