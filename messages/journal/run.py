"""Run metadata: what a replay needs to rebuild the actors of a journaled run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import attrs
from arbor.messages.codec import CodecError
from arbor.messages.journal.format import SCHEMA_VERSION


@attrs.frozen(kw_only=True, slots=True)
class RunMetadata:
    """The first record of every run in a journal.

    ``config`` is the merged raw configuration tree the cluster was built from (what
    ``config.settings.build_settings`` takes), so a replay builds the same actors;
    ``schema_version`` is the message schema of the code that wrote the run. ``built_ns`` is the
    instant the clock was held at while the actors were constructed (constructors may read the
    clock); a replay holds its clock there while rebuilding them. 0 when unknown.
    ``restored`` maps each actor the run restored from the state store at start to that state, as
    plain data (``supervision.snapshots.SnapshotCodec.to_plain``): a replay restores the rebuilt
    actor from it, so the run audits from where it really began. Absent in older journals.
    ``derived`` lists the tags of the messages the run did not journal (a replay recomputes them;
    see ``records``); empty (every message journaled) in journals of schema 1.
    """

    run_id: str
    config: dict[str, Any]
    schema_version: int = SCHEMA_VERSION
    started_ns: int = 0
    built_ns: int = 0
    restored: dict[str, Any] = attrs.field(factory=dict)
    derived: tuple[str, ...] = ()

    def to_primitive(self) -> dict[str, Any]:
        out = {"run_id": self.run_id, "config": plain_config(self.config), "schema_version": self.schema_version,
               "started_ns": self.started_ns, "built_ns": self.built_ns}
        if self.restored:
            out["restored"] = self.restored
        if self.derived:
            out["derived"] = list(self.derived)
        return out

    @classmethod
    def from_primitive(cls, obj: Any) -> RunMetadata:
        if not (isinstance(obj, dict) and isinstance(obj.get("run_id"), str) and isinstance(obj.get("config"), dict)
                and type(obj.get("schema_version")) is int and type(obj.get("started_ns")) is int):
            raise CodecError("run metadata is {run_id: str, config: map, schema_version: int, started_ns: int}")
        built = obj.get("built_ns", 0)
        if type(built) is not int:
            raise CodecError("run metadata built_ns must be an integer")
        restored = obj.get("restored", {})
        if not (isinstance(restored, dict) and all(isinstance(k, str) for k in restored)):
            raise CodecError("run metadata restored is a map of actor id to state")
        derived = obj.get("derived", [])
        if not (isinstance(derived, list) and all(isinstance(t, str) for t in derived)):
            raise CodecError("run metadata derived is a list of message tags")
        return cls(run_id=obj["run_id"], config=obj["config"], schema_version=obj["schema_version"],
                   started_ns=obj["started_ns"], built_ns=built, restored=restored, derived=tuple(derived))


def plain_config(value: Any, key: str = "config") -> Any:
    """``value`` as msgpack-able primitives: TOML dates and times become ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): plain_config(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    raise ValueError(f"{key}: {type(value).__name__} cannot be journaled as configuration")
