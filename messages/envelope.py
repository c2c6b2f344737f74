"""The envelope every routed message travels in."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True, slots=True)
class Envelope:
    """Addressing and timing around one message.

    ``msg_id`` is unique within a run; ``causation_id`` is the ``msg_id`` of the message whose
    handling produced this one (0 for an external input). Times are integer nanoseconds:
    ``ts_event_ns`` when the thing happened, ``ts_recv_ns`` when the runtime received it.
    """

    msg_id: int
    sender: str
    receiver: str
    ts_event_ns: int
    ts_recv_ns: int
    causation_id: int
    payload: Any
