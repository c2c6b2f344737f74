"""Find a strategy class by its configured name and build it with validated parameters.

``strategy`` in the configuration is one of:

- a built-in name (``trend_following``, ``mean_reversion``);
- ``path/to/file.py:ClassName`` (relative paths from the current directory);
- ``package.module:ClassName`` (importable from the runtime's environment);
- the name of an entry point in the ``arbor.strategies`` group (an installed package's).

Every failure is a ConfigError on ``strategy`` naming the file or module, the class and why.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from arbor.config.errors import ConfigError
from arbor.strategy.api import API_VERSION, Strategy

__all__ = ["ENTRY_POINT_GROUP", "load_strategy", "make_strategy", "resolve_strategy"]

ENTRY_POINT_GROUP = "arbor.strategies"


def _builtins() -> dict[str, type[Strategy]]:
    from arbor.strategy.builtin import BUILTIN

    return dict(BUILTIN)


def _fail(where: str, cls: str, reason: str) -> ConfigError:
    return ConfigError("strategy", f"cannot load strategy class {cls!r} from {where}: {reason}")


def _import_file(path: Path, cls: str) -> Any:
    if not path.is_file():
        raise _fail(str(path), cls, "no such file")
    resolved = path.resolve()
    # one module per file (the import system's cache), so loading twice gives the same class
    name = "arbor_user_strategy_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise _fail(str(path), cls, "not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _fail(str(path), cls, f"importing it raised {type(exc).__name__}: {exc}") from None
    return module


def _import_module(module_name: str, cls: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise _fail(f"module {module_name}", cls, f"importing it raised {type(exc).__name__}: {exc}") from None


def _check_class(obj: Any, where: str, cls: str) -> type[Strategy]:
    if not isinstance(obj, type) or not issubclass(obj, Strategy):
        raise _fail(where, cls, "not a subclass of arbor.strategy.Strategy")
    version = getattr(obj, "API_VERSION", None)
    if version != API_VERSION:
        raise _fail(where, cls, f"written for strategy API {version!r}, this runtime has {API_VERSION}")
    if obj.decide is Strategy.decide:
        raise _fail(where, cls, "does not implement decide(ctx)")
    return obj


def resolve_strategy(spec: Any) -> type[Strategy]:
    """The strategy class ``spec`` names (see the module docstring), checked against the API."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("strategy", f"must be a strategy name or 'file.py:Class', got {spec!r}")
    builtins = _builtins()
    if spec in builtins:
        return builtins[spec]
    if ":" not in spec:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == spec:
                try:
                    obj = ep.load()
                except Exception as exc:
                    raise _fail(f"entry point {spec} ({ep.value})", ep.value, f"{type(exc).__name__}: {exc}") from None
                return _check_class(obj, f"entry point {spec}", ep.value)
        raise ConfigError("strategy", f"unknown strategy {spec!r} (built-in: {', '.join(sorted(builtins))}; "
                          "or 'path/to/file.py:Class', 'package.module:Class', an arbor.strategies entry point)")
    where, _, cls = spec.rpartition(":")
    if not cls.isidentifier():
        raise _fail(where, cls, "the part after ':' must be a class name")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    module = _import_file(Path(where), cls) if is_file else _import_module(where, cls)
    label = where if is_file else f"module {where}"
    obj = getattr(module, cls, None)
    if obj is None:
        raise _fail(label, cls, "no such class in it")
    return _check_class(obj, label, cls)


def load_strategy(spec: Any, params: Mapping[str, Any] | None = None) -> Strategy:
    """The named strategy built with validated parameters; ConfigError names ``strategy`` or the parameter."""
    cls = resolve_strategy(spec)
    where = str(spec).rpartition(":")[0] or str(spec)
    try:
        strategy = cls(params or {})
        strategy.inputs().validate()
    except ConfigError as exc:
        if exc.key == "strategy":
            raise _fail(where, cls.__name__, exc.reason) from None
        raise
    except Exception as exc:
        raise _fail(where, cls.__name__, f"building it raised {type(exc).__name__}: {exc}") from None
    return strategy


make_strategy = load_strategy  # the name the runtime used before the public API
