"""bench/decode_fuzz: seeded mutations of real frames through every decoder entry point, counted.

For each entry point (adapters/testing/decoder_frames.py) it mutates the real frame ``--frames``
times (adapters/testing/decoder_fuzz.py: truncation, byte flips, dropped/renamed keys, swapped
types, huge, tiny, NaN, Infinity, negative, non-ASCII digits, invalid UTF-8, UTF-16, deep
nesting) and reports how many were refused (a DecodeFailure with the raw bytes kept) and how
many problems were seen: exceptions escaping, absurd values accepted, raw bytes lost, the fast
path deciding otherwise than the reference. Exit status 1 when there is any problem.
Usage: python bench/decode_fuzz.py [--data ../shared/data] [--frames 2000] [--seed 14] [--show 5]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arbor.adapters.testing.decoder_frames import entry_points
from arbor.adapters.testing.decoder_fuzz import MUTATIONS, judge, mutate
from arbor.messages.codec import Codec
from loguru import logger


class RandomPick:
    """A mutation's choices from a seeded ``random.Random``: the same counts on every run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choice(self, options: Sequence[Any]) -> Any:
        return self._rng.choice(list(options))

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    parser.add_argument("--frames", type=int, default=2000, help="mutated frames per entry point")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--show", type=int, default=5, help="problems to print")
    args = parser.parse_args()
    logger.remove()  # the collector logs each refused frame; here they are only counted
    pick = RandomPick(random.Random(args.seed))
    codec = Codec()
    by_kind: Counter[str] = Counter()
    refused_by_kind: Counter[str] = Counter()
    problems: list[str] = []
    print(f"{'entry point':30} {'mutated':>8} {'refused':>8} {'accepted':>9} {'problems':>9}")
    for ep in entry_points(Path(args.data)):
        refused = bad = 0
        for _ in range(args.frames):
            mutation, payload = mutate(ep.frame, pick)
            verdict = judge(ep, mutation, payload, codec)
            by_kind[mutation] += 1
            refused_by_kind[mutation] += verdict.refused
            refused += verdict.refused
            bad += bool(verdict.problems)
            problems += verdict.problems
        print(f"{ep.name:30} {args.frames:>8} {refused:>8} {args.frames - refused:>9} {bad:>9}")
    total, total_refused = sum(by_kind.values()), sum(refused_by_kind.values())
    print("\nby mutation: " + ", ".join(f"{k} {refused_by_kind[k]}/{by_kind[k]}" for k in MUTATIONS))
    print(f"\n{total} mutated frames, {total_refused} refused, {total - total_refused} accepted with sane values, "
          f"{len(problems)} problems")
    for problem in problems[: args.show]:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
