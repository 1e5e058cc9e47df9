"""Benchmark: publishing a set of package files into a local channel all at once
(local_channel.publish_files: copy all, index once, switch) against the earlier file-by-file
way (place_package: copy and re-index per file), measured in the same run on the same data.

Run as `.venv/bin/python bench/publication_set.py [--existing N] [--set M] [--rounds R]`.
Prints figures and the ratio, asserts nothing. The channel starts with N published files in
linux-64; each round publishes M new files into a fresh copy of it, both ways.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing_app.adapters.local_channel import IncomingFile  # noqa: E402
from testing_app.adapters.local_channel import place_package  # noqa: E402
from testing_app.adapters.local_channel import publish_files  # noqa: E402
from testing_app.adapters.local_channel import reindex  # noqa: E402
from testing_app.adapters.local_channel import sha256_of  # noqa: E402
from tests.testing_app.packages import build_package  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--existing", type=int, default=200)
    parser.add_argument("--set", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = work / "base"
        for i in range(args.existing):
            build_package(base, name=f"old{i}", subdir="linux-64")
        reindex(base, subdirs=["linux-64"])
        sources = [
            build_package(work / "src", name=f"new{i}", subdir="linux-64") for i in range(args.set)
        ]
        files = [IncomingFile(p, "linux-64", p.name, sha256_of(p)) for p in sources]
        one_by_one, as_set = [], []
        for round_ in range(args.rounds):
            for way, timings in (("files", one_by_one), ("set", as_set)):
                root = work / f"{way}-{round_}"
                shutil.copytree(base, root, ignore=shutil.ignore_patterns(".stage"))
                started = time.perf_counter()
                if way == "files":
                    for f in files:
                        place_package(
                            source=f.source, root=root, subdir=f.subdir, filename=f.filename,
                            sha256=f.sha256,
                        )  # fmt: skip
                else:
                    publish_files(root=root, files=files)
                timings.append(time.perf_counter() - started)
    per_file, per_set = statistics.median(one_by_one), statistics.median(as_set)
    print(f"channel with {args.existing} files, publishing {args.set}, {args.rounds} rounds")
    print(f"file by file (copy + re-index each): median {per_file * 1000:.0f} ms")
    print(f"as one set (copy all, index once, switch): median {per_set * 1000:.0f} ms")
    print(f"ratio set / file-by-file: {per_set / per_file:.2f}")


if __name__ == "__main__":
    main()
