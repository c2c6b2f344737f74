"""``bin/new-strategy NAME [--dir D]``: write a strategy file and a pytest file for it that pass."""

from __future__ import annotations

import argparse
import re
import sys
from importlib.resources import files
from pathlib import Path
from string import Template

__all__ = ["class_name_of", "main", "write_strategy"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def class_name_of(name: str) -> str:
    """``my_strategy`` -> ``MyStrategy``."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def write_strategy(name: str, directory: Path) -> tuple[Path, Path]:
    """Write ``<dir>/<name>.py`` and ``<dir>/test_<name>.py``; ValueError for a bad name or an existing file."""
    if not _NAME.match(name):
        raise ValueError(f"strategy name {name!r} must be snake_case: a-z, 0-9, _ and start with a letter")
    class_name = class_name_of(name)
    strategy_path = directory / f"{name}.py"
    test_path = directory / f"test_{name}.py"
    for path in (strategy_path, test_path):
        if path.exists():
            raise ValueError(f"{path} exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    values = {"name": name, "class_name": class_name, "path": str(strategy_path)}
    templates = files("arbor.strategy") / "templates"
    for template, path in (("strategy.py.tmpl", strategy_path), ("test_strategy.py.tmpl", test_path)):
        text = Template((templates / template).read_text()).substitute(values)
        if template.startswith("test_"):
            # the test finds the strategy file next to itself, wherever the pair is moved
            text = text.replace(f'SPEC = "{strategy_path}:{class_name}"',
                                f'SPEC = str(__import__("pathlib").Path(__file__).with_name("{name}.py")) + ":{class_name}"')
        path.write_text(text)
    return strategy_path, test_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/new-strategy", description=__doc__)
    parser.add_argument("name", help="snake_case name: the file is NAME.py, the class its CamelCase")
    parser.add_argument("--dir", default="strategies", type=Path, help="where to write the files (default strategies/)")
    args = parser.parse_args(argv)
    try:
        strategy_path, test_path = write_strategy(args.name, args.dir)
    except ValueError as exc:
        print(f"bin/new-strategy: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {strategy_path} and {test_path}")
    print(f"test it:      pytest {test_path}")
    print(f"backtest it:  bin/replay whatif --hbt ../shared/data/binance_usdm/usdm_btcusdt_20240808.gz "
          f"--set 'symbols.*.strategy={strategy_path}:{class_name_of(args.name)}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
