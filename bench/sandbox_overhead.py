"""What the test sandbox costs per job: starting a trivial command through bubblewrap (as the
runners do, testing_app/adapters/sandbox.py) against starting it directly, in the same run.

    .venv/bin/python bench/sandbox_overhead.py [rounds]

Needs bubblewrap and a `nobody` user; prints timings and the ratio, asserts nothing. A test job
runs for seconds to hours, so what matters is the absolute cost per job.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing_app.adapters.sandbox import SandboxPolicy  # noqa: E402
from testing_app.adapters.sandbox import resolve_user  # noqa: E402

COMMAND = ["sh", "-c", "true"]
ENV = {"PATH": "/usr/bin:/bin"}


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=ENV, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    uid, gid = resolve_user("nobody")
    policy = SandboxPolicy(uid=uid, gid=gid, env=ENV, read_only=(Path(sys.prefix),))
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as folder:
        workspace = Path(folder)
        policy.prepare(workspace)
        sandboxed = policy.argv(COMMAND, workspace=workspace)
        direct, boxed = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            direct.append(timed(COMMAND))
            boxed.append(timed(sandboxed))
    d, b = statistics.median(direct), statistics.median(boxed)
    print(f"rounds: {rounds}")
    print(f"direct start    median {d * 1000:.1f} ms (min {min(direct) * 1000:.1f} ms)")
    print(f"sandboxed start median {b * 1000:.1f} ms (min {min(boxed) * 1000:.1f} ms)")
    print(f"overhead per job: {(b - d) * 1000:.1f} ms; ratio sandboxed/direct {b / d:.1f}")


if __name__ == "__main__":
    main()
