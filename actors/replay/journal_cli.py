"""``bin/journal``: look inside a journal directory, check it, repair it.

    bin/journal segments DIR        one line per segment: first index, records, bytes, run, state
    bin/journal stats DIR           record counts by kind and by message type
    bin/journal dump DIR [--kind K] [--type T] [--symbol S] [--since ISO] [--until ISO] [--limit N]
                                    records as JSON lines (time filters use the receive time)
    bin/journal verify DIR          check every checksum; exit 1 on damage, 0 when whole
    bin/journal repair DIR          cut damaged tails, quarantine the bytes; exit 0 (1 if refused)

Exit 2: no such journal, or a journal that cannot be read at all.
"""

from __future__ import annotations

import argparse
import base64
import enum
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import msgpack
from arbor.messages.base import message_asdict
from arbor.messages.codec import Codec, CodecError
from arbor.messages.envelope import Envelope
from arbor.messages.journal import (
    CorruptJournal,
    InputRef,
    JournalLocked,
    JournalReader,
    Output,
    RecordKind,
    RunMetadata,
    RunStopped,
    entry_from_primitive,
    repair,
    unpack_record,
)
from loguru import logger


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="journal", description="Inspect, verify and repair an Arbor journal.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("segments", "list segments"), ("stats", "counts by record kind and message type"),
                       ("verify", "check checksums (exit 1 on damage)"), ("repair", "cut and quarantine damage")):
        sub.add_parser(name, help=text).add_argument("journal", type=Path)
    d = sub.add_parser("dump", help="records as JSON lines")
    d.add_argument("journal", type=Path)
    d.add_argument("--kind", type=str.upper, choices=[k.name for k in RecordKind])
    d.add_argument("--type", dest="msg_type", help="message type, e.g. OrderFilled (or its tag OrderFilled.v1)")
    d.add_argument("--symbol", type=str.upper)
    d.add_argument("--since", type=parse_time, help="ISO time (UTC unless it has an offset)")
    d.add_argument("--until", type=parse_time, help="ISO time (UTC unless it has an offset), exclusive")
    d.add_argument("--limit", type=int)
    return p.parse_args(argv)


def parse_time(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    logger.remove()
    logger.add(err, level="WARNING", format="{message}")
    if not args.journal.is_dir():
        print(f"journal: no such journal directory: {args.journal}", file=err)
        return 2
    try:
        return COMMANDS[args.command](args, out, err)
    except CorruptJournal as exc:
        print(f"journal: damaged: {exc}", file=err)
        return 2
    except BrokenPipeError:  # `bin/journal dump ... | head`
        return 0


# -- commands ------------------------------------------------------------------------------------------
def cmd_segments(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    segments = JournalReader(args.journal).segments()
    print(f"{'segment':<28} {'first':>12} {'records':>10} {'bytes':>12} {'run':<24} state", file=out)
    for s in segments:
        d = s.damage
        state = "ok" if s.clean else (s.unsupported or (f"damaged: {d.reason} at byte {d.offset}" if d else "damaged"))
        run = s.header.run_id if s.header else "?"
        print(f"{s.path.name:<28} {s.first_index:>12} {s.record_count:>10} {s.size_bytes:>12} {run:<24} {state}",
              file=out)
    return 0


def cmd_stats(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kinds: dict[str, int] = {}
    types: dict[str, dict[str, int]] = {}
    first_ns: int | None = None
    last_ns: int | None = None
    total = size = 0
    for _index, payload in JournalReader(args.journal).records():
        total += 1
        size += len(payload)
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        kind = RecordKind(obj[0]).name
        kinds[kind] = kinds.get(kind, 0) + 1
        if obj[0] in (1, 2):
            tag = obj[1][6]
            by = types.setdefault(kind, {})
            by[tag] = by.get(tag, 0) + 1
            ts = obj[1][4]
            first_ns = ts if first_ns is None else min(first_ns, ts)
            last_ns = ts if last_ns is None else max(last_ns, ts)
    print(f"records {total:,}  payload bytes {size:,}", file=out)
    if first_ns is not None and last_ns is not None:
        print(f"time    {iso(first_ns)} .. {iso(last_ns)}  ({(last_ns - first_ns) / 1e9:.1f} s)", file=out)
    for kind in sorted(kinds, key=lambda k: RecordKind[k]):
        print(f"{kind:<12} {kinds[kind]:>12,}", file=out)
        for tag, n in sorted(types.get(kind, {}).items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {tag:<30} {n:>12,}", file=out)
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    report = JournalReader(args.journal).verify()
    print(f"{len(report.segments)} segments, {report.record_count:,} good records", file=out)
    for s in report.segments:
        if s.damage is not None:
            print(f"DAMAGED {s.path.name}: {s.damage.reason} at byte {s.damage.offset} "
                  f"({s.size_bytes - s.good_bytes if s.header else s.size_bytes} bad bytes)", file=out)
        if s.unsupported:
            print(f"UNSUPPORTED {s.path.name}: {s.unsupported}", file=out)
    for g in report.gaps:
        print(f"GAP records {g.start}..{g.stop - 1} missing (quarantined earlier)", file=out)
    print("OK" if report.ok else "DAMAGED: run bin/journal repair", file=out)
    return 0 if report.ok else 1


def cmd_repair(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        report = repair(args.journal)
    except JournalLocked as exc:
        print(f"journal: {exc}", file=err)
        return 1
    for q in report.quarantined:
        print(f"quarantined {q.bytes_moved} bytes of {q.segment.name} from byte {q.offset} ({q.reason}) "
              f"to {q.quarantine_path.name}", file=out)
    for s in report.unsupported:
        print(f"left untouched (newer program): {s.path.name}", file=out)
    print("nothing to repair" if report.clean else f"repaired; {sum(s.record_count for s in report.segments):,} "
          f"records kept", file=out)
    return 1 if report.unsupported else 0


def cmd_dump(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    codec = Codec()
    want_kind = RecordKind[args.kind] if args.kind else None
    want_type = args.msg_type.split(".v")[0] if args.msg_type else None
    lines = dump_lines(JournalReader(args.journal), codec, want_kind, want_type, args.symbol, args.since, args.until)
    for shown, line in enumerate(lines, start=1):
        out.write(line + "\n")
        if args.limit is not None and shown >= args.limit:
            break
    return 0


def dump_lines(reader: JournalReader, codec: Codec, kind: RecordKind | None, msg_type: str | None,
               symbol: str | None, since: int | None, until: int | None) -> Iterator[str]:
    """JSON lines of the records that pass every filter. INPUT records have no type, symbol or
    receive time of their own: message filters apply to the message they name (still in memory
    only while it is recent), and time filters to their handler instant."""
    recent: dict[int, tuple[str, str]] = {}  # msg_id -> (type name, symbol), for INPUT filtering
    for index, payload in reader.records():
        try:
            obj = unpack_record(payload)
            entry = entry_from_primitive(codec, obj)
        except CodecError as exc:
            yield json.dumps({"index": index, "error": str(exc)})
            continue
        k = RecordKind(obj[0])
        if isinstance(entry, (Envelope, Output)):
            env = entry.envelope if isinstance(entry, Output) else entry
            name = type(env.payload).__name__
            sym = getattr(env.payload, "symbol", "") or _symbol_of(env.receiver) or _symbol_of(env.sender)
            if len(recent) > 200_000:
                recent.clear()
            recent[env.msg_id] = (name, sym or "")
            ts = env.ts_recv_ns
        elif isinstance(entry, InputRef):
            name, sym = recent.get(entry.msg_id, ("", ""))
            ts = entry.now_ns
        elif isinstance(entry, RunMetadata):
            name, sym, ts = "RunStarted", "", entry.started_ns
        else:
            name, sym, ts = "RunStopped", "", entry.stopped_ns
        if kind is not None and k is not kind:
            continue
        if msg_type is not None and name != msg_type:
            continue
        if symbol is not None and sym != symbol:
            continue
        if since is not None and ts < since:
            continue
        if until is not None and ts >= until:
            continue
        yield json.dumps(to_json(index, k, entry), default=_default, separators=(",", ":"))


def _symbol_of(actor_id: str) -> str:
    head, sep, _ = actor_id.rpartition("/")
    return head if sep else ""


def to_json(index: int, kind: RecordKind, entry: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"index": index, "kind": kind.name}
    if isinstance(entry, Output):
        row.update(envelope_json(entry.envelope), receivers=list(entry.receivers))
    elif isinstance(entry, Envelope):
        row.update(envelope_json(entry))
    elif isinstance(entry, InputRef):
        row.update(actor=entry.actor_id, now_ns=entry.now_ns, now=iso(entry.now_ns), msg_id=entry.msg_id)
    elif isinstance(entry, RunMetadata):
        row.update(run_id=entry.run_id, schema_version=entry.schema_version, started_ns=entry.started_ns,
                   config=entry.config)
    elif isinstance(entry, RunStopped):
        row.update(stopped_ns=entry.stopped_ns)
    return row


def envelope_json(env: Envelope) -> dict[str, Any]:
    msg = env.payload
    return {"msg_id": env.msg_id, "sender": env.sender, "receiver": env.receiver, "ts_event_ns": env.ts_event_ns,
            "ts_recv_ns": env.ts_recv_ns, "recv": iso(env.ts_recv_ns), "causation_id": env.causation_id,
            "type": type(msg).TAG, "message": message_asdict(msg)}


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(v).decode("ascii")
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


COMMANDS = {"segments": cmd_segments, "stats": cmd_stats, "verify": cmd_verify, "repair": cmd_repair,
            "dump": cmd_dump}

if __name__ == "__main__":
    sys.exit(main())
