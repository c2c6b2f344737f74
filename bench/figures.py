"""What a bench measured, as data: the ``--json`` file every bench writes, and README's bench table.

Every bench builds a list of :class:`Figure` and, given ``--json OUT``, writes them with
:func:`write_bench_json`. ``bench/all`` runs the benches, gathers their files into one results
file (``var/bench/results.json``) with the machine and its load, and rewrites the region of
README.md between :data:`BEGIN` and :data:`END` with :func:`render_region`. The region's first
line carries a digest of the rest, so a hand edit of a figure is detected (the unit test checks it).

A figure always has a baseline measured in the same run (a floor, a plain variant, one worker):
its ratio to that baseline is what holds on a noisy shared machine, while the absolute value
moves with the machine's load.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:begin"
END = "<!-- bench:end -->"
SCHEMA = 1


@dataclass(frozen=True)
class Figure:
    """One measured figure and the baseline it is compared with (both from the same run).

    Both are in ``unit``. ``ratio`` is always ``value / baseline_value``: for a rate, the share of
    the baseline's speed; for a latency, how many baseline times it took. ``higher_is_better``
    says which way the ratio should move; ``target`` is the goal as text, ``met`` whether it was.
    """

    name: str
    label: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        return out


def median_ratio(values: Sequence[float], baselines: Sequence[float]) -> float:
    """The median of the per-round ratios ``value / baseline`` (rounds interleaved, so each pair shared a load)."""
    return statistics.median(v / b for v, b in zip(values, baselines, strict=True))


def figure_from_json(d: Mapping[str, Any]) -> Figure:
    """A :class:`Figure` from its JSON form (the computed ``ratio`` is recomputed, not trusted)."""
    fields = {k: d[k] for k in ("name", "label", "value", "unit", "baseline", "baseline_value")}
    return Figure(**fields, higher_is_better=bool(d.get("higher_is_better", True)),
                  target=str(d.get("target", "")), met=d.get("met"))


def write_bench_json(path: str | os.PathLike[str] | None, bench: str, figures: Iterable[Figure],
                     notes: Sequence[str] = (), skipped: str = "") -> None:
    """Write one bench's figures to ``path`` (nothing when ``path`` is None).

    ``skipped`` is the reason when the bench could not run (e.g. an optional peer not installed);
    ``notes`` are short sentences bench/all prints under the table (what was run, on what data).
    """
    if path is None:
        return
    doc = {"schema": SCHEMA, "bench": bench, "figures": [f.to_json() for f in figures],
           "notes": list(notes), "skipped": skipped}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=1) + "\n")


def machine() -> dict[str, Any]:
    """What the benches ran on: CPU model, cores, Python, OS, and the git commit of the tree."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.machine(), "cores": os.cpu_count() or 1,
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "commit": git_commit()}


def git_commit() -> str:
    """The short commit of the repository holding this file, ``+dirty`` with uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def format_value(value: float, unit: str) -> str:
    """A figure as the table shows it: thousands separated, three significant digits below 100."""
    if unit in ("ms", "us"):
        return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def _ratio(f: Figure) -> str:
    r = f.ratio
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}"
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def _met(f: Figure) -> str:
    if not f.target:
        return ""
    if f.met is None:
        return f.target
    return f"{f.target}: {'met' if f.met else '**not met**'}"


def _load(values: Sequence[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def render_table(results: Mapping[str, Any]) -> str:
    """The Markdown that goes between the markers, from a results file's content (deterministic)."""
    run = results["run"]
    host = run["machine"]
    lines = [
        f"Measured by `bench/all{' --quick' if run.get('quick') else ''}` on {run['date']} at commit "
        f"{host['commit']}: {host['cpu']}, {host['cores']} cores, Python {host['python']}; load average "
        f"(1/5/15 min) {_load(run.get('load_before'))} before, {_load(run.get('load_after'))} after; "
        f"{run.get('elapsed_s', 0):.0f} s in all. Ratios are to the baseline measured in the same bench run; "
        "on this shared machine they hold where the absolute figures move with the load.",
        "",
        "| bench | figure | value | baseline (same run) | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes: list[str] = []
    for name, bench in results["benches"].items():
        for d in bench.get("figures", []):
            f = figure_from_json(d)
            lines.append(f"| {name} | {f.label} | {format_value(f.value, f.unit)} | {f.baseline}: "
                         f"{format_value(f.baseline_value, f.unit)} | {_ratio(f)} | {_met(f)} |")
        if bench.get("skipped"):  # a bench may skip a part (an optional peer) and still measure the rest
            lines.append(f"| {name} | skipped: {bench['skipped']} | | | | |")
        when = ""
        if bench.get("run") != run["date"]:
            when = f", kept from an earlier run: {bench.get('date')} at commit {bench.get('commit')}"
        if bench.get("last_failure"):
            when += f" (its run on {run['date']} failed: {bench['last_failure']}; see var/bench/{name}.log)"
        note = " ".join(bench.get("notes", []))
        notes.append(f"- `{name}`: `{bench.get('command', name)}`, {bench.get('elapsed_s', 0):.0f} s, load "
                     f"{_load(bench.get('load_before'))} before and {_load(bench.get('load_after'))} after{when}. "
                     f"{note}".rstrip())
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def render_region(results: Mapping[str, Any]) -> str:
    """The whole region, markers included: the begin marker names its source and the body's digest."""
    body = render_table(results)
    return (f"{BEGIN} written by bench/all from var/bench/results.json; do not edit by hand; "
            f"digest={digest(body)} -->\n{body}\n{END}")


class RegionError(ValueError):
    """README.md has no well-formed bench region (missing, repeated or out-of-order markers)."""


def find_region(text: str) -> tuple[int, int]:
    """``(start, end)`` offsets of the region in ``text``, markers included."""
    begins = text.count(BEGIN)
    ends = text.count(END)
    if begins != 1 or ends != 1:
        raise RegionError(f"expected one {BEGIN!r} and one {END!r} marker, found {begins} and {ends}")
    start = text.index(BEGIN)
    stop = text.index(END)
    if stop < start:
        raise RegionError(f"{END!r} comes before {BEGIN!r}")
    return start, stop + len(END)


def region_body(text: str) -> tuple[str, str]:
    """The region's recorded digest and its body (the lines between the two markers)."""
    start, stop = find_region(text)
    region = text[start:stop]
    first, _, rest = region.partition("\n")
    if not first.endswith("-->") or "digest=" not in first:
        raise RegionError(f"the begin marker has no digest: {first!r}")
    recorded = first.rsplit("digest=", 1)[1].removesuffix("-->").strip()
    body = rest.removesuffix(END).removesuffix("\n")
    return recorded, body


def rewrite(text: str, results: Mapping[str, Any]) -> str:
    """``text`` with its bench region replaced by the one rendered from ``results``."""
    start, stop = find_region(text)
    return text[:start] + render_region(results) + text[stop:]


def rewrite_file(readme: str | os.PathLike[str], results_file: str | os.PathLike[str]) -> None:
    """Rewrite ``readme``'s bench region from a results file written by bench/all."""
    results = json.loads(Path(results_file).read_text())
    path = Path(readme)
    path.write_text(rewrite(path.read_text(), results))
