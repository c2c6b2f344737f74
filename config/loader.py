"""Load configuration: ``config/default.toml``, then an optional file, an env file, then the environment.

Environment overrides use ``ARBOR__<SECTION>__<KEY>=value`` (double underscores; the value is
read as a TOML literal when it parses as one, else as a string): ``ARBOR__RISK__MAX_LEVERAGE=3``.
An env file holds the same ``KEY=value`` lines. Secrets (API keys) are read from the environment
only, by the venue adapters, never from these files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arbor.config.errors import ConfigError

DEFAULT_FILE = Path(__file__).with_name("default.toml")
ENV_PREFIX = "ARBOR__"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("--config", f"{path} is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None


def check_var_dir(path: Path | str) -> Path:
    """``run.var_dir`` exists (created if need be) and this process can write in it, else a ConfigError."""
    var = Path(path)
    try:
        var.mkdir(parents=True, exist_ok=True)
        probe = var / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError("run.var_dir", f"{var} is not a writable directory: {exc.strerror or exc}") from None
    return var


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` wins; tables merge key by key; arrays are replaced whole."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; blank lines and ``#`` comments ignored."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{n}", "expected KEY=value")
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Nested overrides from ``ARBOR__A__B=value`` variables."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(".".join(path), "conflicts with another override")
        node[path[-1]] = _literal(raw)
    return out


def load_raw(config_file: Path | None = None, env_file: Path | None = None,
             environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merged, not yet validated, configuration tree."""
    raw = read_toml(DEFAULT_FILE)
    if config_file is not None:
        raw = deep_merge(raw, read_toml(Path(config_file)))
    if env_file is not None:
        if not Path(env_file).is_file():
            raise ConfigError("--env-file", f"file not found (or not a file): {env_file}")
        raw = deep_merge(raw, env_overrides(parse_env_file(Path(env_file))))
    raw = deep_merge(raw, env_overrides(os.environ if environ is None else environ))
    return raw
