"""The project installs under one import name, arbor, and nothing else at the top of site-packages."""

from __future__ import annotations

import subprocess
import sys


def _outside_the_repository(code: str, tmp_path) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_folders_import_under_arbor(tmp_path):
    """Outside the repository, every folder imports as arbor.<folder>."""
    out = _outside_the_repository(
        "import arbor.messages, arbor.actors, arbor.adapters, arbor.config, arbor.supervision, arbor.strategy, arbor.analysis; print('ok')", tmp_path)
    assert out == "ok"


def test_no_bare_top_level_modules_are_installed(tmp_path):
    """No top-level messages, config, actors, adapters, supervision, strategy or analysis module is importable once installed."""
    out = _outside_the_repository(
        "import importlib.util as u; print([n for n in ('messages', 'config', 'actors', 'adapters', 'supervision', 'strategy', 'analysis')"
        " if u.find_spec(n) is not None])", tmp_path)
    assert out == "[]"
