"""Benchmark: the solve of an install check on the real lock-file channels (pytorch + nvidia +
conda-forge, packages_app/demo_data/channels/lockfile), the way install checks call it: a fresh
gateway per solve, the cell's virtual packages. Target: median <= 200 ms.

Run as `.venv/bin/python bench/planning_solve.py [--rounds N]`. Prints figures, asserts
nothing; needs no database. Three cells: PyTorch 2.3.1 + CUDA 12.1 on linux-64 (62 records),
the same on win-64, and the unsolvable torchvision 0.18.1 pinned to PyTorch 2.2.0.
"""

import argparse
import statistics
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

from testing_app.adapters.solver import solve_environment  # noqa: E402

LOCKFILE = BASE / "packages_app" / "demo_data" / "channels" / "lockfile"
CHANNELS = [(LOCKFILE / name).as_uri() for name in ("pytorch", "nvidia", "conda-forge")]
LINUX = ["__unix=0", "__linux=5.15", "__glibc=2.28", "__cuda=12.1"]
CASES = {
    "pytorch 2.3.1 cuda12.1 linux-64": (
        "linux-64",
        ["pytorch ==2.3.1 py3.11_cuda12.1_cudnn8.9.2_0", "pytorch-cuda 12.1.*", "python 3.11.*"],
        LINUX,
    ),
    "pytorch 2.3.1 cuda12.1 win-64": (
        "win-64",
        ["pytorch ==2.3.1", "pytorch-cuda 12.1.*", "python 3.11.*"],
        ["__win=0", "__cuda=12.1"],
    ),
    "torchvision 0.18.1 + pytorch 2.2.0 (unsolvable)": (
        "linux-64",
        ["torchvision ==0.18.1 py311_cu121", "pytorch ==2.2.0", "pytorch-cuda 12.1.*"],
        LINUX,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    every = []
    for label, (platform, specs, virtual) in CASES.items():
        seconds, result = [], None
        for _ in range(args.rounds):
            result = solve_environment(
                channels=CHANNELS, platform=platform, specs=specs, virtual_packages=virtual
            )
            seconds.append(result.seconds)
        every += seconds
        ms = sorted(s * 1000 for s in seconds)
        outcome = f"{len(result.packages)} records" if result.ok else "unsolvable"
        print(
            f"{label:<48} median {statistics.median(ms):6.1f} ms  p95 "
            f"{ms[int(len(ms) * 0.95)]:6.1f} ms  ({outcome})"
        )
    print(f"all solves: median {statistics.median(every) * 1000:.1f} ms; target: median <= 200 ms")


if __name__ == "__main__":
    main()
