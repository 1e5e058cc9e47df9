"""Benchmark: the planner's reverse-dependency closure on a 20,000-package graph (pure, no
database): direct dependents and the whole transitive closure, from 200 roots.
Target: <= 50 ms per closure.

Run as `.venv/bin/python bench/planning_revdeps.py [--packages N] [--seed S]`. Prints figures,
asserts nothing. The graph: every package depends on 3 packages among the ones before it,
leaning towards the first 100 (the way numpy, pytorch and a few others are depended on by
everything), so that low-numbered roots have closures of thousands.
"""

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing_app.planner.engine import reverse_closure  # noqa: E402

ROOTS = 200


def graph(packages: int, seed: int) -> dict[str, frozenset[str]]:
    rng = random.Random(seed)
    dependents: dict[str, set[str]] = defaultdict(set)
    for index in range(1, packages):
        for _ in range(3):
            # Half the edges go to the 100 most depended-on packages, half anywhere before.
            target = rng.randrange(min(index, 100)) if rng.random() < 0.5 else rng.randrange(index)
            dependents[f"p{target}"].add(f"p{index}")
    return {name: frozenset(names) for name, names in dependents.items()}


def timed(edges, roots, depth) -> tuple[list[float], list[int]]:
    seconds, sizes = [], []
    for root in roots:
        started = time.perf_counter()
        closure = reverse_closure(edges, root, depth=depth)
        seconds.append(time.perf_counter() - started)
        sizes.append(len(closure))
    return seconds, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    edges = graph(args.packages, args.seed)
    print(f"graph: {args.packages:,} packages, {sum(map(len, edges.values())):,} edges, "
          f"built in {time.perf_counter() - started:.2f} s")  # fmt: skip
    roots = [f"p{i}" for i in random.Random(args.seed).sample(range(args.packages), ROOTS - 10)]
    roots += [f"p{i}" for i in range(10)]  # the most depended-on ones: the worst case
    for label, depth in (("direct (depth 1)", 1), ("transitive (whole closure)", None)):
        seconds, sizes = timed(edges, roots, depth)
        ms = sorted(s * 1000 for s in seconds)
        p50, p95 = statistics.median(ms), ms[int(len(ms) * 0.95)]
        print(
            f"{label:<28} p50 {p50:7.3f} ms  p95 {p95:7.3f} ms  max {ms[-1]:7.3f} ms  "
            f"closure sizes: median {int(statistics.median(sizes)):,}, max {max(sizes):,}"
        )
    print("target: <= 50 ms per closure")


if __name__ == "__main__":
    main()
