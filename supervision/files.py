"""Files that other processes read while we rewrite them: replaced in one step, never half-written."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, text: str, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old file or the new, never a mix.

    The temporary file sits beside ``path`` (same filesystem, so ``os.replace`` is atomic) and is
    named per process and thread, so concurrent writers never share one. With ``fsync`` the new
    content is on disk before it replaces the old. A failed write leaves ``path`` as it was and
    removes the temporary file; the error propagates to the caller.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
