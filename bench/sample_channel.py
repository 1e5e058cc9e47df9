"""The demo's sample channel: a cold build (rattler-build builds every recipe, empty cache)
against a warm one (a fresh channel folder, every recipe from the cache), N interleaved rounds.

The cold build is what a first `make demo` pays inside `seed_demo`; the warm one what every
later `make demo` (or a fresh channel folder) pays. Prints seconds and the warm/cold ratio.
Needs py-rattler-build (the dev or rattler-build extra); no database.

    .venv/bin/python bench/sample_channel.py [ROUNDS]
"""

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packages_app.adapters.sample_channel import build_sample_channel  # noqa: E402
from testing_app.adapters.host_probe import conda_subdir  # noqa: E402

SOURCES = ROOT / "packages_app" / "demo_data" / "samples"


def _timed(target: Path, cache: Path) -> tuple[float, int]:
    subdir = conda_subdir(platform.system(), platform.machine())
    start = time.perf_counter()
    channel = build_sample_channel(sources=SOURCES, target=target, subdir=subdir, cache=cache)
    return time.perf_counter() - start, len(channel.packages)


def main(rounds: int) -> None:
    cold, warm = [], []
    for number in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-samples-") as tmp:
            cache = Path(tmp) / "cache"
            seconds, count = _timed(Path(tmp) / "cold", cache)
            cold.append(seconds)
            seconds, _ = _timed(Path(tmp) / "warm", cache)
            warm.append(seconds)
        print(f"round {number + 1}: {count} packages, cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s")
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    print(f"cold (rattler-build, empty cache): median {cold_median:.2f} s, max {max(cold):.2f} s")
    print(f"warm (from the cache): median {warm_median:.2f} s, max {max(warm):.2f} s")
    print(f"ratio warm/cold: {warm_median / cold_median:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
