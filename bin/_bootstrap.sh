# Sourced by the bin/ commands: make sure .venv exists and holds this project, then set PY.
# It leaves the working directory alone: relative paths a user passes resolve against theirs.
# Re-installs when pyproject.toml or setup.py changes. Needs only python3 (>= 3.11) with venv and pip.
ARBOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ARBOR_VENV:-$ARBOR_ROOT/.venv}"
PY="$VENV/bin/python"
_stamp="$VENV/.arbor-installed"
_want="$(cd "$ARBOR_ROOT" && cat pyproject.toml setup.py | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -x "$PY" ] || [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_want" ]; then
    _base="${ARBOR_PYTHON:-python3}"
    if ! "$_base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        echo "arbor: Python >= 3.11 is required (found: $("$_base" --version 2>&1)); set ARBOR_PYTHON" >&2
        exit 2
    fi
    echo "arbor: setting up $VENV (first use; needs network access to PyPI) ..." >&2
    [ -x "$PY" ] || "$_base" -m venv "$VENV" || exit 2
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || exit 2
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ARBOR_ROOT[dev]" >&2 || exit 2
    echo "$_want" > "$_stamp"
fi
