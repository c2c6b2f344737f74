"""The data plane between the cluster's processes: where link frames enter and leave a node.

``session`` is the pure session layer (per-link sequence numbers, cumulative acks, resend after a
reconnect, de-duplication, epochs); ``transport`` carries its frames over ZeroMQ (ROUTER on the
Coordinator, a DEALER per Worker, CURVE beyond loopback) as msgpack, never pickles. Importing
this package starts nothing."""
