"""Benchmark: peak memory (RSS) of parsing a repodata.json, against its size.

Run as `.venv/bin/python bench/repodata_memory.py [MiB ...]` (default 16 32 64). For each size it
writes a repodata.json of that size (the real pytorch snapshot's records, repeated under
unique file names, so records have the real shape: ~1 KiB each with their depends), then parses
it in a fresh process with packages_app.adapters.repodata.parse_repodata_file (what
import_repodata and the promotion checks run on a whole file; sync parses in chunks, see
bench/sync_scale.py) and reads that process's peak RSS from the kernel (os.wait4). The
baseline, in the same run, is a process that only json.loads the same file. It prints MiB,
ratios, the fitted bytes of memory per byte of repodata, and the largest
REPODATA_PARSE_MAX_BYTES that keeps a worker under 2 GiB by that fit. Asserts nothing.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SNAPSHOT = BASE_DIR / "packages_app/demo_data/channels/pytorch-snapshot/linux-64/repodata.json"
WORKER_LIMIT = 2 * 1024**3
MIB = 1024 * 1024

PARSE = """
import sys
from pathlib import Path
from packages_app.adapters.repodata import parse_repodata_file
parsed = parse_repodata_file(Path(sys.argv[1]), lenient_specs=True)
print(len(parsed.records))
"""
JSON_ONLY = """
import json, sys
from pathlib import Path
raw = json.loads(Path(sys.argv[1]).read_bytes())
print(sum(len(raw.get(k, {})) for k in ("packages", "packages.conda")))
"""
IMPORT_ONLY = """
from packages_app.adapters.repodata import parse_repodata_file
print(0)
"""


def write_repodata(path: Path, target_bytes: int) -> int:
    """A linux-64 repodata.json of about `target_bytes`, from the snapshot's records."""
    snapshot = json.loads(SNAPSHOT.read_text())
    records = list(snapshot.get("packages.conda", {}).items()) + list(
        snapshot.get("packages", {}).items()
    )
    per_record = len(json.dumps(dict(records))) / len(records)
    count = int(target_bytes / per_record)
    conda, bz2 = {}, {}
    for i in range(count):
        filename, record = records[i % len(records)]
        unique = dict(record, build=f"{record['build']}_{i}")
        stem = filename.rsplit(".conda", 1)[0] if filename.endswith(".conda") else filename[:-8]
        if filename.endswith(".conda"):
            conda[f"{stem}_{i}.conda"] = unique
        else:
            bz2[f"{stem}_{i}.tar.bz2"] = unique
    payload = {"info": {"subdir": "linux-64"}, "packages": bz2, "packages.conda": conda}
    path.write_text(json.dumps(payload))
    return count


def peak_rss(code: str, path: Path) -> int:
    """Peak RSS in bytes of a fresh interpreter running `code` on `path` (Linux: KiB units)."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], cwd=BASE_DIR, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"the measured process failed on {path}")
    return usage.ru_maxrss * 1024


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [16, 32, 64]
    floor = peak_rss(IMPORT_ONLY, SNAPSHOT)
    print(f"interpreter + imports: {floor / MIB:.0f} MiB")
    print(f"{'repodata':>10} {'records':>9} {'json.loads':>11} {'parse':>8} {'parse/json':>10} "
          f"{'parse/file':>10}")  # fmt: skip
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / "linux-64" / "repodata.json"
            path.parent.mkdir(exist_ok=True)
            count = write_repodata(path, size * MIB)
            file_bytes = path.stat().st_size
            baseline = peak_rss(JSON_ONLY, path)
            parse = peak_rss(PARSE, path)
            points.append((file_bytes, parse))
            print(
                f"{file_bytes / MIB:>7.0f} MiB {count:>9} {baseline / MIB:>7.0f} MiB "
                f"{parse / MIB:>4.0f} MiB {parse / baseline:>10.2f} "
                f"{(parse - floor) / file_bytes:>10.1f}"
            )
    (x0, y0), (x1, y1) = points[0], points[-1]
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else (y1 - floor) / x1
    intercept = y1 - slope * x1
    cap = (WORKER_LIMIT - intercept) / slope
    fixed = intercept / MIB
    print(f"fit: {slope:.1f} bytes of peak RSS per byte of repodata, {fixed:.0f} MiB fixed")
    print(f"largest repodata under 2 GiB by this fit: {cap / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
