"""Parameter search: what-if replays of one recording over a strategy's declared parameters.

A *spec* names parameters of the configured strategy (``Strategy.PARAMS``) and the values to try:
a list, or a range ``{low, high, step | count}``, or nothing (the declared bounds). ``grid`` tries
every combination, ``random`` draws ``trials`` of them with ``random.Random(seed)``, so one spec
gives one list of configurations. Every value is checked against the declaration before anything
runs: an unknown parameter, a value outside the bounds or a bad option is a ``ConfigError``
naming ``sweep.<key>`` (exit 2 in ``bin/replay sweep``).

Each configuration is one what-if replay (``whatif.run_whatif``) in a worker process
(``concurrent.futures.ProcessPoolExecutor``, one worker per core by default): the same
configuration and inputs give the same decision digest whichever worker runs it. Results are
ranked by an objective (``OBJECTIVES``; the figures themselves come from
``actors/replay/metrics.py`` through the what-if report), configurations whose max drawdown
exceeds the cap ranked after every one within it.

Walk-forward split: with ``split = f`` the configurations are fitted (ranked) on the first
``f`` of the recording's time span and the best are replayed again on the held-out rest, from a
fresh start (its features warm up again), so in-sample and out-of-sample figures sit side by side.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs
from arbor.actors.replay.whatif import Input, journal_inputs, market_inputs, run_whatif
from arbor.config.errors import ConfigError
from arbor.strategy.params import Param

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "Axis",
    "Outcome",
    "Plan",
    "RunTask",
    "SweepResult",
    "SweepSpec",
    "best_config",
    "build_spec",
    "configurations",
    "declared_params",
    "execute",
    "objective_value",
    "parse_param_text",
    "plan_sweep",
    "rank",
    "read_spec_file",
    "render",
    "run_task",
    "run_tasks",
    "time_span",
    "to_json",
    "with_params",
]

OBJECTIVES: Mapping[str, str] = {
    "net_pnl": "net PnL of the closed trades (quote)",
    "profit_factor": "sum of wins / |sum of losses| (no loss and a win: infinite)",
    "sharpe": "Sharpe ratio annualised from daily returns (undefined on a run shorter than 2 days: "
              "give a period)",
    "sortino": "Sortino ratio annualised from daily returns (undefined on a run shorter than 2 days: "
               "give a period)",
}
METHODS = ("grid", "random")
MAX_CONFIGURATIONS = 10_000
_SWEEP_KEYS = frozenset({"method", "objective", "max_drawdown", "split", "trials", "seed", "jobs", "params",
                         "oos_top", "period"})
_RANGE_KEYS = frozenset({"low", "high", "step", "count"})
_DECIMALS = 6  # random draws are rounded to this many decimals, so a table and a TOML read well


# -- the spec ------------------------------------------------------------------------------------
@attrs.frozen
class Axis:
    """The values one parameter takes: ``values``, or a range ``low..high`` (``step`` or ``count``)."""

    name: str
    kind: type
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    count: int | None = None

    def grid(self) -> tuple[Any, ...]:
        """Every value a grid tries, low to high."""
        if self.values:
            return self.values
        assert self.low is not None and self.high is not None
        if self.count is not None:
            if self.count == 1:
                return (self._typed(self.low),)
            width = (self.high - self.low) / (self.count - 1)
            return tuple(dict.fromkeys(self._typed(self.low + i * width) for i in range(self.count)))
        step = self.step if self.step is not None else 1.0
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        return tuple(dict.fromkeys(self._typed(self.low + i * step) for i in range(n)))

    def sample(self, rng: random.Random) -> Any:
        """One value drawn from the axis (uniform over a range, a choice among values)."""
        if self.values:
            return rng.choice(self.values)
        assert self.low is not None and self.high is not None
        if self.kind is int:
            return rng.randint(int(math.ceil(self.low)), int(math.floor(self.high)))
        return round(rng.uniform(self.low, self.high), _DECIMALS)

    def _typed(self, x: float) -> Any:
        return int(round(x)) if self.kind is int else round(x, 10)


@attrs.frozen
class SweepSpec:
    """A validated search: its axes, method and options."""

    axes: tuple[Axis, ...]
    method: str = "grid"
    objective: str = "net_pnl"
    max_drawdown: float | None = None  # a fraction of the peak, e.g. 0.02
    split: float | None = None  # in-sample share of the recording's time span
    trials: int = 20
    seed: int = 0
    jobs: int | None = None
    oos_top: int = 1
    period: str | None = None  # Sharpe and Sortino over this period, not annualised (e.g. "1m")

    @property
    def period_ns(self) -> int | None:
        from arbor.strategy.inputs import interval_ns

        return interval_ns(self.period) if self.period is not None else None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)


def declared_params(raw: Mapping[str, Any]) -> dict[str, list[tuple[str, Param]]]:
    """Each parameter the configured symbols' strategies declare, with ``(symbol: strategy, Param)``s."""
    from arbor.strategy.loader import resolve_strategy

    out: dict[str, list[tuple[str, Param]]] = {}
    symbols = raw.get("symbols") or []
    for i, entry in enumerate(symbols):
        spec = entry.get("strategy", "trend_following")
        try:
            cls = resolve_strategy(spec)
        except ConfigError as exc:
            raise ConfigError(f"symbols[{i}].strategy", exc.reason) from None
        for name, param in cls.PARAMS.items():
            out.setdefault(name, []).append((f"{entry.get('symbol', i)}: {spec}", param))
    for name in list(out):
        if len(out[name]) < len(symbols):  # a parameter is swept on every symbol, so each must declare it
            del out[name]
    return out


def parse_param_text(text: str) -> tuple[str, Any]:
    """``name=SPEC`` from the command line as ``(name, spec)`` in the TOML file's form.

    ``a,b,c`` a list; ``low..high`` a range, ``low..high:step`` with a step, ``low..high/n`` with
    ``n`` evenly spaced values; ``name`` alone the declared bounds. Values are TOML literals.
    """
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    key = f"sweep.params.{name}"
    if not name.isidentifier():
        raise ConfigError("--param", f"expected NAME=VALUES, got {text!r}")
    if not sep:
        return name, None
    if not spec:
        raise ConfigError(key, "no values after '='")
    if ".." in spec:
        low, _, rest = spec.partition("..")
        out: dict[str, Any] = {"low": _literal(low, key)}
        if ":" in rest:
            high, _, step = rest.partition(":")
            out["step"] = _literal(step, key)
        elif "/" in rest:
            high, _, count = rest.partition("/")
            out["count"] = _literal(count, key)
        else:
            high = rest
        out["high"] = _literal(high, key)
        return name, out
    return name, [_literal(v, key) for v in spec.split(",")]


def _literal(text: str, key: str) -> Any:
    import tomllib

    text = text.strip()
    if not text:
        raise ConfigError(key, "an empty value")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string parameter's value


def build_spec(table: Mapping[str, Any], params: Sequence[tuple[str, Any]],
               declared: Mapping[str, Sequence[tuple[str, Param]]], **options: Any) -> SweepSpec:
    """A validated ``SweepSpec`` from a ``[sweep]`` table, ``--param`` pairs and options (options win).

    ``ConfigError`` names ``sweep.<key>`` (``sweep.params.<name>`` for a parameter) and the reason.
    """
    unknown = sorted(set(table) - _SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_SWEEP_KEYS))})")
    merged = {**{k: v for k, v in table.items() if k != "params"},
              **{k: v for k, v in options.items() if v is not None}}
    spec_params = table.get("params", {})
    if not isinstance(spec_params, Mapping):
        raise ConfigError("sweep.params", "must be a table of parameter = values")
    all_params = {**dict(spec_params), **dict(params)}
    if not all_params:
        raise ConfigError("sweep.params", "name at least one parameter to sweep (--param NAME=VALUES)")
    method = merged.get("method", "grid")
    if method not in METHODS:
        raise ConfigError("sweep.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    axes = tuple(_axis(name, value, declared, method) for name, value in all_params.items())
    objective = merged.get("objective", "net_pnl")
    if objective not in OBJECTIVES:
        raise ConfigError("sweep.objective", f"unknown objective {objective!r} (one of: {', '.join(OBJECTIVES)})")
    cap = merged.get("max_drawdown")
    if cap is not None and (not _number(cap) or not 0 < cap <= 1):
        raise ConfigError("sweep.max_drawdown", f"must be a fraction of the peak in (0, 1], got {cap!r}")
    split = merged.get("split")
    if split is not None and (not _number(split) or not 0 < split < 1):
        raise ConfigError("sweep.split", f"must be the in-sample share of the recording in (0, 1), got {split!r}")
    trials = _count(merged, "trials", 20)
    seed = merged.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("sweep.seed", f"must be an integer, got {seed!r}")
    jobs = _count(merged, "jobs", None)
    oos_top = _count(merged, "oos_top", 1)
    period = merged.get("period")
    if period is not None:
        from arbor.strategy.inputs import interval_ns

        try:
            interval_ns(period)
        except ConfigError:
            raise ConfigError("sweep.period", f"must be a period like 30s, 1m or 1h, got {period!r}") from None
    if method == "grid":
        for a in axes:  # a range's grid points lie inside it, but check each against the declaration
            for v in a.grid():
                _checked(f"sweep.params.{a.name}", v, declared[a.name])
        size = math.prod(len(a.grid()) for a in axes)
        if size > MAX_CONFIGURATIONS:
            raise ConfigError("sweep.params", f"the grid has {size:,} configurations (at most "
                                              f"{MAX_CONFIGURATIONS:,}): fewer values, or method random")
    return SweepSpec(axes=axes, method=method, objective=objective, max_drawdown=float(cap) if cap else None,
                     split=float(split) if split else None, trials=trials, seed=seed, jobs=jobs, oos_top=oos_top,
                     period=period)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _count(merged: Mapping[str, Any], key: str, default: int | None) -> Any:
    v = merged.get(key, default)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"sweep.{key}", f"must be a positive integer, got {v!r}")
    return v


def _axis(name: str, value: Any, declared: Mapping[str, Sequence[tuple[str, Param]]], method: str) -> Axis:
    key = f"sweep.params.{name}"
    if name not in declared:
        raise ConfigError(key, f"not a parameter every configured strategy declares (declared: "
                               f"{', '.join(sorted(declared)) or 'none'})")
    owners = declared[name]
    kind = owners[0][1].kind
    if isinstance(value, list):
        if not value:
            raise ConfigError(key, "an empty list of values")
        axis = Axis(name, kind, values=tuple(dict.fromkeys(_checked(key, v, owners) for v in value)))
    elif value is None or isinstance(value, Mapping):
        axis = _range_axis(key, name, kind, dict(value or {}), owners, method)
    else:
        axis = Axis(name, kind, values=(_checked(key, value, owners),))
    return axis


def _range_axis(key: str, name: str, kind: type, spec: dict[str, Any],
                owners: Sequence[tuple[str, Param]], method: str) -> Axis:
    unknown = sorted(set(spec) - _RANGE_KEYS)
    if unknown:
        raise ConfigError(key, f"unknown range key {unknown[0]!r} (known: low, high, step, count)")
    if kind is bool and not spec:
        return Axis(name, kind, values=(False, True))
    if kind not in (int, float):
        raise ConfigError(key, f"a {kind.__name__} parameter takes a list of values, not a range")
    param = owners[0][1]
    low = spec.get("low", _inside(param.low, param.low_open, kind))
    high = spec.get("high", param.high)
    for bound, v in (("low", low), ("high", high)):
        if bound in spec:
            if not _number(v):
                raise ConfigError(key, f"{bound} must be a finite number, got {v!r}")
            _checked(key, v, owners)
            continue
        if not _number(v):
            raise ConfigError(key, f"the declared {bound} bound is {v}: give a range ({name}=LOW..HIGH)")
        if bound == "low" and param.low_open and kind is not int:
            if method == "grid":
                raise ConfigError(key, f"the declared low bound {v} is excluded, so a grid cannot start on it: "
                                       f"give a range ({name}=LOW..HIGH/COUNT)")
            continue  # a random draw of exactly the open bound is drawn again
        _checked(key, v, owners)
    if low > high:
        raise ConfigError(key, f"low {low} is above high {high}")
    step, count = spec.get("step"), spec.get("count")
    if step is not None and count is not None:
        raise ConfigError(key, "give step or count, not both")
    if step is not None and (not _number(step) or step <= 0):
        raise ConfigError(key, f"step must be a positive number, got {step!r}")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ConfigError(key, f"count must be a positive integer, got {count!r}")
    if method == "grid" and kind is float and step is None and count is None:
        raise ConfigError(key, f"a grid over a range of numbers needs a step or a count "
                               f"({name}=LOW..HIGH:STEP or {name}=LOW..HIGH/COUNT)")
    if kind is int and step is not None and not float(step).is_integer():
        raise ConfigError(key, f"an integer parameter takes an integer step, got {step!r}")
    return Axis(name, kind, low=float(low), high=float(high), step=step, count=count)


def _inside(low: float, low_open: bool, kind: type) -> float:
    """The declared lower bound, or for an open integer bound the first integer above it."""
    if kind is int and low_open and math.isfinite(low):
        return math.floor(low) + 1
    return low


def _checked(key: str, value: Any, owners: Sequence[tuple[str, Param]]) -> Any:
    out = value
    for owner, param in owners:
        try:
            out = param.check(key.rpartition(".")[2], value)
        except ConfigError as exc:
            raise ConfigError(key, f"{value!r} is refused by {owner}: {exc.reason}") from None
    return out


def configurations(spec: SweepSpec, declared: Mapping[str, Sequence[tuple[str, Param]]]) -> list[dict[str, Any]]:
    """The parameter sets to run, in a fixed order: the grid's product, or ``trials`` seeded draws."""
    names = spec.names
    if spec.method == "grid":
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(a.grid() for a in spec.axes))]
    rng = random.Random(spec.seed)
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _ in range(spec.trials * 20):  # draws that repeat one already taken (small int axes) are drawn again
        if len(out) >= spec.trials:
            break
        combo = tuple(_draw(a, rng, declared[a.name]) for a in spec.axes)
        out.setdefault(combo, dict(zip(names, combo, strict=True)))
    return list(out.values())


def _draw(axis: Axis, rng: random.Random, owners: Sequence[tuple[str, Param]]) -> Any:
    for _ in range(100):  # an open bound can be drawn (or rounded onto) exactly: draw again
        v = axis.sample(rng)
        try:
            return _checked(f"sweep.params.{axis.name}", v, owners)
        except ConfigError:
            continue
    raise ConfigError(f"sweep.params.{axis.name}", "no value inside the declared bounds could be drawn")


def with_params(raw: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with ``params`` set in every symbol's ``strategy_params``."""
    out = dict(raw)
    out["symbols"] = [{**entry, "strategy_params": {**dict(entry.get("strategy_params") or {}), **params}}
                      for entry in raw.get("symbols") or []]
    return out


# -- running ------------------------------------------------------------------------------------
@attrs.frozen
class RunTask:
    """One replay a worker runs: a resolved configuration, its inputs and the window of them."""

    index: int
    raw: dict[str, Any]
    journal: str | None = None  # None: the market the configuration names (recordings)
    limit: int | None = None  # the first N inputs make up the recording
    window: tuple[int, int] | None = None  # receive time [from, to) in ns
    period_ns: int | None = None  # Sharpe and Sortino per period of this length (None: annualised, daily)


def _inputs(raw: Mapping[str, Any], journal: str | None, codec: Any) -> Iterator[Input]:
    from arbor.config.settings import build_settings

    return journal_inputs(journal, codec) if journal is not None else market_inputs(build_settings(dict(raw)))


def _windowed(inputs: Iterable[Input], limit: int | None, window: tuple[int, int] | None) -> Iterator[Input]:
    it = iter(inputs) if limit is None else itertools.islice(inputs, limit)
    if window is None:
        return it
    lo, hi = window
    return (i for i in it if lo <= i[0] < hi)


def time_span(raw: Mapping[str, Any], journal: str | None, limit: int | None) -> tuple[int, int]:
    """The first and last receive time of the inputs (the first ``limit`` of them)."""
    from arbor.messages.codec import Codec

    first = last = None
    for ts, _receiver, _msg in _windowed(_inputs(raw, journal, Codec()), limit, None):
        if first is None:
            first = ts
        last = ts
    if first is None or last is None:
        raise ConfigError("sweep.split", "the recording holds no inputs to split")
    return first, last


def run_task(task: RunTask) -> dict[str, Any]:
    """Replay one configuration (in a worker process) and return its figures (``figures_of``)."""
    from arbor.config.settings import build_settings
    from arbor.messages.codec import Codec

    codec = Codec()
    settings = build_settings(task.raw)
    inputs = _windowed(_inputs(task.raw, task.journal, codec), task.limit, task.window)
    return figures_of(run_whatif(settings, inputs, codec=codec), float(settings.risk.starting_equity),
                      task.period_ns)


def figures_of(result: Any, starting_equity: float, period_ns: int | None = None) -> dict[str, Any]:
    """The figures a sweep ranks and shows, taken from the what-if report (metrics.py's).

    With ``period_ns`` the Sharpe and Sortino are ``metrics.per_period``'s (not annualised),
    else the report's (annualised from daily returns)."""
    from arbor.actors.replay.metrics import per_period

    report = result.report
    m = report["metrics"]
    o = m["overall"]
    ratios = {"sharpe": m["sharpe"], "sortino": m["sortino"], "annualised_note": m["annualised_note"]}
    if period_ns is not None:
        pp = per_period([(ts, e) for ts, e in report["equity_curve"]], starting_equity, period_ns)
        note = None if pp["sharpe"] is not None else f"{pp['periods']} period return(s), at least 2 needed"
        ratios = {"sharpe": pp["sharpe"], "sortino": pp["sortino"], "annualised_note": note}
    return {
        "digest": result.digest, "inputs": result.inputs, "market_seconds": report["market_seconds"],
        "trades": o["trades"], "wins": o["wins"], "losses": o["losses"], "win_rate": o["win_rate"],
        "net_pnl": float(o["net_pnl"]), "profit_factor": o["profit_factor"], "expectancy": o["expectancy"],
        **ratios,
        "total_return": m["total_return"], "final_equity": report["final_equity"],
        "max_drawdown": m["max_drawdown"], "max_drawdown_pct": m["max_drawdown_pct"],
        "elapsed_s": round(result.elapsed_s, 3),
    }


def _quiet_worker() -> None:
    """Runs first in each worker process: actors log every decision; a sweep shows only errors."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")


def run_tasks(tasks: Sequence[RunTask], jobs: int, progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Every task's figures, in task order; ``jobs`` worker processes (1: one after another, here)."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        for n, task in enumerate(tasks):
            results[n] = run_task(task)
            if progress:
                progress()
    else:
        # spawn: a worker starts from a clean interpreter whatever threads the parent runs (fork
        # copies them half-way), and it is what every platform supports
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_quiet_worker) as pool:
            futures = {pool.submit(run_task, task): n for n, task in enumerate(tasks)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress()
    return [r for r in results if r is not None]


# -- ranking ------------------------------------------------------------------------------------
@attrs.frozen
class Outcome:
    """One configuration's figures, and where it stands."""

    index: int
    params: dict[str, Any]
    figures: dict[str, Any]
    within_cap: bool = True
    out_of_sample: dict[str, Any] | None = None


def objective_value(figures: Mapping[str, Any], objective: str) -> float | None:
    """The objective's value in ``figures``; None when undefined (a Sharpe on a too-short run)."""
    if objective == "profit_factor" and figures["profit_factor"] is None:
        return math.inf if figures["wins"] and not figures["losses"] else None
    v = figures[objective]
    return None if v is None else float(v)


def rank(outcomes: Iterable[Outcome], objective: str, max_drawdown: float | None) -> list[Outcome]:
    """Best first: within the drawdown cap before over it, defined objective before undefined,
    higher before lower, then the configuration order."""
    marked = [attrs.evolve(o, within_cap=max_drawdown is None or o.figures["max_drawdown_pct"] <= max_drawdown)
              for o in outcomes]

    def key(o: Outcome) -> tuple[bool, bool, float, int]:
        v = objective_value(o.figures, objective)
        return (not o.within_cap, v is None, -(v if v is not None else 0.0), o.index)

    return sorted(marked, key=key)


def best_config(user_config: Mapping[str, Any], raw: Mapping[str, Any], params: Mapping[str, Any],
                assignments: Sequence[str]) -> dict[str, Any]:
    """A TOML document that ``bin/replay whatif --config`` turns back into the best configuration.

    It holds the user's own ``--config`` file, the ``--set`` assignments outside ``[[symbols]]``,
    and the resolved symbols with the best parameters (arrays replace whole when merged).
    """
    from arbor.actors.replay.whatif import apply_overrides
    from arbor.config.loader import deep_merge

    doc = apply_overrides(dict(user_config), [a for a in assignments if not a.strip().startswith("symbols")])
    return deep_merge(doc, {"symbols": with_params(raw, params)["symbols"]})


def read_spec_file(path: Path) -> dict[str, Any]:
    """The ``[sweep]`` table of a TOML file; ConfigError names the file when it is not one."""
    from arbor.config.loader import read_toml

    try:
        doc = read_toml(Path(path))
    except ConfigError as exc:
        raise ConfigError("--spec", exc.reason) from None
    table = doc.get("sweep")
    unknown = sorted(set(doc) - {"sweep"})
    if unknown:
        raise ConfigError(unknown[0], f"a sweep spec ({path}) holds only a [sweep] table")
    if not isinstance(table, dict):
        raise ConfigError("sweep", f"{path} has no [sweep] table")
    return table


# -- a whole sweep --------------------------------------------------------------------------------
@attrs.frozen
class Plan:
    """The configurations a sweep runs, and those the strategy refused (``check_params``) with why."""

    spec: SweepSpec
    raw: dict[str, Any]
    configs: tuple[dict[str, Any], ...]
    refused: tuple[tuple[dict[str, Any], str], ...] = ()


@attrs.frozen
class SweepResult:
    plan: Plan
    ranked: tuple[Outcome, ...]
    in_sample: tuple[int, int] | None  # receive-time window the ranking was fitted on
    held_out: tuple[int, int] | None
    jobs: int
    elapsed_s: float

    @property
    def best(self) -> Outcome | None:
        return self.ranked[0] if self.ranked else None


def plan_sweep(raw: Mapping[str, Any], spec: SweepSpec,
               declared: Mapping[str, Sequence[tuple[str, Param]]]) -> Plan:
    """The configurations of ``spec``; those a strategy's cross-parameter rule refuses are set aside."""
    from arbor.config.settings import build_settings

    runnable, refused = [], []
    for params in configurations(spec, declared):
        try:
            build_settings(with_params(raw, params))
        except ConfigError as exc:
            refused.append((params, str(exc)))
            continue
        runnable.append(params)
    if not runnable:
        why = refused[0][1] if refused else "no configuration"
        raise ConfigError("sweep.params", f"every configuration is refused by the strategy, e.g. {why}")
    return Plan(spec=spec, raw=dict(raw), configs=tuple(runnable), refused=tuple(refused))


def execute(plan: Plan, *, journal: str | None = None, limit: int | None = None, jobs: int | None = None,
            progress: Callable[[], None] | None = None) -> SweepResult:
    """Run the plan on ``jobs`` workers (default: one per core), rank, and replay the best held out."""
    import os
    import time

    spec = plan.spec
    workers = jobs or spec.jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    in_sample = held_out = None
    if spec.split is not None:
        first, last = time_span(plan.raw, journal, limit)
        cut = first + int((last - first) * spec.split)
        in_sample, held_out = (first, cut), (cut, last + 1)
    tasks = [RunTask(index=n, raw=with_params(plan.raw, p), journal=journal, limit=limit, window=in_sample,
                     period_ns=spec.period_ns) for n, p in enumerate(plan.configs)]
    figures = run_tasks(tasks, workers, progress)
    ranked = rank((Outcome(index=n, params=p, figures=f) for n, (p, f) in enumerate(zip(plan.configs, figures,
                                                                                          strict=True))),
                  spec.objective, spec.max_drawdown)
    if held_out is not None:
        top = ranked[: spec.oos_top]
        oos = run_tasks([attrs.evolve(tasks[o.index], window=held_out) for o in top], workers, progress)
        ranked = [attrs.evolve(o, out_of_sample=f) for o, f in zip(top, oos, strict=True)] + ranked[len(top):]
    return SweepResult(plan=plan, ranked=tuple(ranked), in_sample=in_sample, held_out=held_out, jobs=workers,
                       elapsed_s=time.perf_counter() - t0)


def _fmt(v: Any, fmt: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v
    return format(v, fmt) if isinstance(v, float) else str(v)


_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (figure, heading, format)
    ("net_pnl", "net PnL", ".4f"), ("trades", "trades", ""), ("win_rate", "win rate", ".1%"),
    ("profit_factor", "PF", ".2f"), ("max_drawdown_pct", "max DD", ".3%"), ("sharpe", "Sharpe", ".2f"),
    ("sortino", "Sortino", ".2f"),
)


def render(result: SweepResult, top: int = 20) -> str:
    """The ranked results table, the best configuration and, with a split, its held-out figures."""
    spec = result.plan.spec
    names = spec.names
    lines = []
    if result.in_sample is not None and result.held_out is not None:
        a, b = result.in_sample
        c, d = result.held_out
        lines.append(f"in-sample: the first {spec.split:.0%} of the recording ({(b - a) / 1e9:,.1f} s); "
                     f"held out: the rest ({(d - c) / 1e9:,.1f} s), replayed from a fresh start")
    cap = f", max drawdown cap {spec.max_drawdown:.2%}" if spec.max_drawdown is not None else ""
    what = OBJECTIVES[spec.objective]
    if spec.period is not None and spec.objective in ("sharpe", "sortino"):
        what = f"{spec.objective.capitalize()} ratio of {spec.period} returns, not annualised"
    lines.append(f"ranked by {spec.objective} ({what}){cap}:")
    if spec.period is not None:
        lines.append(f"Sharpe and Sortino: per {spec.period} period, not annualised")
    widths = [max(len(n), 10) for n in names]
    head = f"{'rank':>4}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))
    head += "".join(f"  {h:>10}" for _, h, _ in _COLUMNS) + "  digest"
    lines.append(head)
    for r, o in enumerate(result.ranked[:top], 1):
        f = o.figures
        row = f"{r:>4}  " + "  ".join(f"{_fmt(o.params[n], 'g'):>{w}}" for n, w in zip(names, widths, strict=True))
        row += "".join(f"  {_fmt(f[k], fmt):>10}" for k, _, fmt in _COLUMNS) + f"  {f['digest'][:12]}"
        if not o.within_cap:
            row += "  (over the drawdown cap)"
        lines.append(row)
    if len(result.ranked) > top:
        lines.append(f"  ... {len(result.ranked) - top} more (--top N, --json OUT for all)")
    undefined = sum(objective_value(o.figures, spec.objective) is None for o in result.ranked)
    if undefined:
        note = next((o.figures["annualised_note"] for o in result.ranked if o.figures["annualised_note"]), None)
        lines.append(f"note: {spec.objective} is undefined for {undefined} of {len(result.ranked)} configurations"
                     + (f" ({note}); they rank last" if note else "; they rank last"))
    for params, why in result.plan.refused:
        lines.append(f"refused by the strategy: {_params_text(params)}: {why}")
    best = result.best
    if best is not None and best.out_of_sample is not None:
        lines.append(f"best {_params_text(best.params)}: in-sample beside out-of-sample (held out)")
        lines.append(f"  {'':<14}{'in-sample':>14}{'out-of-sample':>16}")
        for k, h, fmt in (("net_pnl", "net PnL", ".4f"), ("trades", "trades", ""), ("win_rate", "win rate", ".1%"),
                          ("profit_factor", "profit factor", ".2f"), ("max_drawdown_pct", "max drawdown", ".3%"),
                          ("total_return", "total return", ".4%"), ("sharpe", "Sharpe", ".2f")):
            lines.append(f"  {h:<14}{_fmt(best.figures[k], fmt):>14}{_fmt(best.out_of_sample[k], fmt):>16}")
    return "\n".join(lines)


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v, 'g')}" for k, v in params.items())


def to_json(result: SweepResult) -> dict[str, Any]:
    """Every configuration's figures, ranked, and the spec, for ``--json``."""
    spec = result.plan.spec
    return {
        "objective": spec.objective, "max_drawdown": spec.max_drawdown, "method": spec.method,
        "period": spec.period,
        "split": spec.split, "in_sample_ns": result.in_sample, "held_out_ns": result.held_out,
        "jobs": result.jobs, "elapsed_s": round(result.elapsed_s, 3),
        "ranked": [{"rank": r, "params": o.params, "within_cap": o.within_cap,
                    "objective": _json_number(objective_value(o.figures, spec.objective)),
                    "figures": o.figures, "out_of_sample": o.out_of_sample}
                   for r, o in enumerate(result.ranked, 1)],
        "refused": [{"params": p, "reason": why} for p, why in result.plan.refused],
    }


def _json_number(v: float | None) -> float | str | None:
    return "inf" if v is not None and math.isinf(v) else v
