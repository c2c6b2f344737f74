"""Operator commands for a running multi-process cluster, over its thespian admin port.

    python -m arbor.actors.distributed.ctl [--host 127.0.0.1] --admin-port 1900 status
    python -m arbor.actors.distributed.ctl --admin-port 1900 kill --reason "why" [--who NAME]
    python -m arbor.actors.distributed.ctl --admin-port 1900 reset --reason "why" [--who NAME]

``kill`` and ``reset`` change trading state: they carry the operator token from
``ARBOR_OPERATOR_TOKEN`` (the environment, never an argument: arguments show in ``ps``), and the
cluster's supervisor refuses them unless it matches the token the cluster was started with (a
cluster started without one refuses them all). A reason needs visible characters. Exit status:
0 forwarded, 1 not delivered or refused, 2 a usage error (no token, no reason). Still keep the
admin port on loopback or a trusted private network (see docs/cluster.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="arbor-ctl")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status")
    for name in ("kill", "reset"):
        c = sub.add_parser(name)
        c.add_argument("--reason", required=True)
        c.add_argument("--who", default="operator")
    args = p.parse_args(argv)
    token = ""
    if args.cmd != "status":
        from arbor.adapters.operator.server import OperatorConfigError, token_from_env
        from arbor.messages.risk import has_visible_text

        try:
            token = token_from_env()
        except OperatorConfigError as exc:
            print(f"arbor-ctl: {exc}", file=sys.stderr)
            return 2
        if not has_visible_text(args.reason):
            print("arbor-ctl: --reason needs visible characters", file=sys.stderr)
            return 2

    from arbor.actors.cluster.multiprocess import restrict_thespian_bind
    from arbor.actors.distributed.supervisor import SUPERVISOR_NAME, ClusterSupervisor
    from arbor.actors.distributed.wire import Ack, ClusterStatus, OperatorCommand, StatusQuery
    from arbor.messages import EngageKillSwitch, ResetKillSwitch
    from arbor.messages.codec import Codec
    from thespian.actors import ActorSystem

    restrict_thespian_bind(args.host)
    asys = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": args.admin_port}, transientUnique=True)
    sup = asys.createActor(ClusterSupervisor, globalName=SUPERVISOR_NAME)
    if args.cmd == "status":
        st = asys.ask(sup, StatusQuery(), timeout=args.timeout)
        if not isinstance(st, ClusterStatus):
            print("no answer from the cluster supervisor", file=sys.stderr)
            return 1
        print(json.dumps({"processes": st.processes, "escalated": st.escalated, "stopping": st.stopping}))
        return 0
    msg = (EngageKillSwitch if args.cmd == "kill" else ResetKillSwitch)(who=args.who, reason=args.reason)
    reply = asys.ask(sup, OperatorCommand("risk", Codec().encode(msg), token=token), timeout=args.timeout)
    if not isinstance(reply, Ack) or reply.detail != "forwarded":
        print(f"not delivered: {getattr(reply, 'detail', 'no answer')}", file=sys.stderr)
        return 1
    print("forwarded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
