"""JSON-lines logging for a running cluster, with secrets redacted from every line."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message

_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "PRIVATE")


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values of environment variables whose names mark them as secrets (long enough to matter)."""
    return tuple(sorted({v for k, v in environ.items() if any(w in k.upper() for w in _SECRET_WORDS) and len(v) >= 6},
                        key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


class JsonLinesSink:
    """A loguru sink writing ``{"ts", "level", "msg", "symbol", "actor", "event_type", "msg_id", ...}`` lines."""

    def __init__(self, path: Path, secrets: tuple[str, ...]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- the sink holds it open; close() closes it
        self._lock = threading.Lock()
        self._secrets = secrets

    def __call__(self, message: Any) -> None:
        rec = message.record
        line: dict[str, Any] = {"ts": rec["time"].isoformat(), "level": rec["level"].name, "msg": rec["message"]}
        for k, v in rec["extra"].items():
            line[k] = v
        line.setdefault("actor", rec["name"])  # every line names where it came from
        line.setdefault("event_type", "log")
        if rec["exception"] is not None:
            line["exception"] = "".join(__import__("traceback").format_exception(*rec["exception"]))
        text = redact(json.dumps(line, default=str), self._secrets)
        with self._lock:
            self._fh.write(text + "\n")

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def configure_logging(log_dir: Path, level: str, console_level: str | None = "WARNING",
                      environ: Mapping[str, str] | None = None, name: str = "") -> JsonLinesSink:
    """Send every log record to ``log_dir/<name or arbor>.jsonl`` (and warnings to stderr, after
    ``name`` if given), secrets redacted."""
    secrets = secret_values(os.environ if environ is None else environ)
    logger.remove()
    sink = JsonLinesSink(log_dir / f"{name or 'arbor'}.jsonl", secrets)
    logger.add(sink, level=level.upper(), enqueue=False)
    if console_level:
        logger.add(stderr_sink(secrets), level=console_level,
                   format="{time:HH:mm:ss} {level} " + (name + " " if name else "") + "{extra[actor]} {message}",
                   filter=lambda r: "actor" in r["extra"])
    return sink


def setup_node_logging(var_dir: str | Path, name: str, level: str) -> JsonLinesSink:
    """Each process of the multi-process cluster logs to its own ``<var_dir>/logs/<name>.jsonl``."""
    return configure_logging(Path(var_dir) / "logs", level, name=name)


def stderr_sink(secrets: tuple[str, ...]) -> Callable[[Message], None]:
    """A loguru sink writing each formatted record to stderr with ``secrets`` redacted."""

    def write(message: Message) -> None:
        sys.stderr.write(redact(str(message), secrets))

    return write
