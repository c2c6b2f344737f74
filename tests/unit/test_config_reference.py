"""config/default.toml is the configuration reference: every key the loader accepts is in it, with a comment.

A key that is set by default is written as ``key = value  # comment`` under its ``[section]``;
a key that is not set by default (fault injection, strategy parameters) is written the same way
behind a ``#``, under a commented header such as ``# [[faults]]`` or
``# [strategy_params.trend_following]``.
"""

from __future__ import annotations

import re
import tomllib

import attrs
from arbor.actors.regime.strategies import STRATEGIES
from arbor.config.loader import DEFAULT_FILE
from arbor.config.settings import MarketSettings, RunSettings, SymbolSettings, _section_classes
from arbor.strategy.assumptions import AssumptionSettings
from arbor.supervision.faults import FaultSpec

_HEADER = re.compile(r"^\s*#?\s*\[\[?\s*([a-z_.]+)\s*\]\]?")
_KEY = re.compile(r"^\s*#?\s*([a-z_]+)\s*=\s*(.*)$")


def accepted_keys() -> set[str]:
    """Every dotted key the configuration loader accepts, by its section."""
    sections: dict[str, type] = {"run": RunSettings, "market": MarketSettings, "symbols": SymbolSettings,
                                 "faults": FaultSpec, "assumptions": AssumptionSettings, **_section_classes()}
    keys = {f"{name}.{f.name}" for name, cls in sections.items() for f in attrs.fields(cls)}
    keys.add("cluster.placement")
    for name, factory in STRATEGIES.items():
        keys |= {f"strategy_params.{name}.{param}" for param in factory.PARAMS}
    return keys


def documented_keys() -> dict[str, str]:
    """Dotted key -> the comment that documents it, as written in config/default.toml."""
    found: dict[str, str] = {}
    section = ""
    for line in DEFAULT_FILE.read_text(encoding="utf-8").splitlines():
        header = _HEADER.match(line)
        if header:  # a table that is itself a key (cluster.placement) is documented on its header line
            section = header.group(1)
            if "." in section and not section.startswith("strategy_params."):
                found[section] = line.partition("]")[2].partition("#")[2].strip()
            continue
        key = _KEY.match(line)
        if key and section:
            value, _, comment = key.group(2).partition("#")
            name = f"{section}.{key.group(1)}"
            if value.strip() and not found.get(name):  # repeated tables ([[symbols]]) say it once
                found[name] = comment.strip()
    return found


def test_default_file_is_valid_toml():
    """The reference parses as TOML (commented reference lines included)."""
    tomllib.loads(DEFAULT_FILE.read_text(encoding="utf-8"))


def test_every_accepted_key_is_in_the_reference():
    """No key the loader accepts is missing from config/default.toml."""
    missing = sorted(accepted_keys() - set(documented_keys()))
    assert missing == []


def test_every_reference_key_is_accepted():
    """The reference names no key that the loader would refuse."""
    unknown = sorted(k for k in documented_keys() if k not in accepted_keys() and not k.startswith("cluster.placement."))
    assert unknown == []


def test_every_reference_key_has_a_comment():
    """Each key in the reference says what it does, on its own line."""
    bare = sorted(k for k, comment in documented_keys().items() if k in accepted_keys() and not comment)
    assert bare == []
