"""A deterministic channel the size of conda-forge's linux-64 + noarch, for bench/sync_scale.py.

What it writes (seed 16, the same bytes on every run):
- linux-64: 1,000,000 records over 25,000 names; noarch: 500,000 records over 12,000 names
  (1.5 M in all, the size the issue names for conda-forge's two largest subdirs).
- Names: records per name follow a Zipf law (exponent 1.1) over the names' ranks, so a few names
  (the python, numpy, libgcc of the channel) have thousands of builds and most have a handful.
- Files: 60 % `.conda` under `packages.conda`, 40 % `.tar.bz2` under `packages`, keys sorted as
  indexers write them; every name's builds get successive versions `MAJOR.MINOR.PATCH`.
- Records carry conda-forge's fields: build, build_number, depends, constrains (1 in 8), license,
  license_family, md5, sha256, size, subdir, timestamp, version; noarch ones `noarch: python`.
- depends: linux-64 records have 0-11 specs (mean about 5.5): a third depend on
  `python >=3.X,<3.Y.0a0` and `python_abi 3.X.* *_cp3X`, 80 % on `libgcc >=13`, and 0-8 on other
  names of the channel (popular names more often) with `>=A.B,<A+1.0a0` pins; noarch records
  depend on `python >=3.9` plus 0-6 other names.
- The second version ("after"): in each subdir 30 records change (a `depends` entry patched, a
  new sha256), 10 are added and 10 removed: 100 changed records across the two subdirs.
"""

import heapq
import json
import random
from pathlib import Path

SEED = 16
SUBDIRS = {"linux-64": (1_000_000, 25_000), "noarch": (500_000, 12_000)}
CHANGED, ADDED, REMOVED = 30, 10, 10  # per subdir: 50 per subdir, 100 in all
LICENSES = [("MIT", "MIT"), ("BSD-3-Clause", "BSD"), ("Apache-2.0", "Apache"), ("GPL-3.0", "GPL3")]
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")


def _names(subdir: str, count: int) -> list[str]:
    prefix = "py-" if subdir == "noarch" else "lib"
    return [f"{prefix}pkg{i:05d}" for i in range(count)]


def _zipf_picker(rng: random.Random, count: int, exponent: float = 1.1):
    weights = [1.0 / (rank + 1) ** exponent for rank in range(count)]
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)

    def pick() -> int:
        value = rng.random() * total
        low, high = 0, count - 1
        while low < high:
            mid = (low + high) // 2
            if cumulative[mid] < value:
                low = mid + 1
            else:
                high = mid
        return low

    return pick


def _record(rng: random.Random, subdir: str, name: str, serial: int, names, pick) -> dict:
    major, minor, patch = serial // 100, (serial // 10) % 10, serial % 10
    version = f"{major}.{minor}.{patch}"
    depends = []
    if subdir == "noarch":
        depends.append("python >=3.9")
        extra = rng.randint(0, 6)
        build = f"pyhd8ed1ab_{rng.randint(0, 3)}"
    else:
        extra = rng.randint(0, 8)
        hash_part = f"h{rng.getrandbits(32):08x}"
        if rng.random() < 0.33:
            py = rng.choice(PYTHONS)
            nxt = f"3.{int(py.split('.')[1]) + 1}"
            depends += [f"python >={py},<{nxt}.0a0", f"python_abi {py}.* *_cp3{py.split('.')[1]}"]
            build = f"py3{py.split('.')[1]}{hash_part}_{rng.randint(0, 3)}"
        else:
            build = f"{hash_part}_{rng.randint(0, 3)}"
        if rng.random() < 0.8:
            depends.append("libgcc >=13")
    for _ in range(extra):
        dep = names[pick()]
        if dep != name:
            a, b = rng.randint(0, 20), rng.randint(0, 9)
            depends.append(f"{dep} >={a}.{b},<{a + 1}.0a0")
    license_, family = rng.choice(LICENSES)
    record = {
        "build": build,
        "build_number": int(build.rsplit("_", 1)[1]),
        "depends": depends,
        "license": license_,
        "license_family": family,
        "md5": f"{rng.getrandbits(128):032x}",
        "name": name,
        "sha256": f"{rng.getrandbits(256):064x}",
        "size": rng.randint(5_000, 50_000_000),
        "subdir": subdir,
        "timestamp": 1_600_000_000_000 + serial * 1000 + rng.randint(0, 999),
        "version": version,
    }
    if rng.random() < 0.125:
        record["constrains"] = [f"{name}-base {version}.*"]
    if subdir == "noarch":
        record["noarch"] = "python"
    return record


def _filename(record: dict, conda: bool) -> str:
    stem = f"{record['name']}-{record['version']}-{record['build']}"
    return stem + (".conda" if conda else ".tar.bz2")


def generate(subdir: str, scale: float = 1.0):
    """(before, after): {"packages": [(filename, json text)], "packages.conda": [...]} each, sorted.
    `scale` shrinks the channel (tests of the bench itself, quick runs)."""
    total, name_count = SUBDIRS[subdir]
    total, name_count = int(total * scale), max(10, int(name_count * scale))
    rng = random.Random(f"{SEED}-{subdir}")
    names = _names(subdir, name_count)
    pick = _zipf_picker(rng, name_count)
    serials = [0] * name_count
    before = {"packages": [], "packages.conda": []}
    for _ in range(total):
        index = pick()
        serials[index] += 1
        record = _record(rng, subdir, names[index], serials[index], names, pick)
        conda = rng.random() < 0.6
        key = "packages.conda" if conda else "packages"
        before[key].append((_filename(record, conda), json.dumps(record, separators=(",", ":"))))
    for key in before:
        # A name's builds can repeat a file name (same version and build string): keep the last.
        before[key] = sorted(dict(before[key]).items())

    change_rng = random.Random(f"{SEED}-{subdir}-after")
    flat = [(key, i) for key in before for i in range(len(before[key]))]
    chosen = change_rng.sample(flat, CHANGED + REMOVED)
    changed, removed = set(chosen[:CHANGED]), set(chosen[CHANGED:])
    after = {}
    for key, entries in before.items():
        kept = []
        for i, (filename, text) in enumerate(entries):
            if (key, i) in removed:
                continue
            if (key, i) in changed:
                record = json.loads(text)
                record["depends"] = [*record["depends"], "patched-dep >=1"]
                record["sha256"] = f"{change_rng.getrandbits(256):064x}"
                text = json.dumps(record, separators=(",", ":"))
            kept.append((filename, text))
        after[key] = kept
    added = []
    for i in range(ADDED):
        name = names[change_rng.randrange(name_count)]
        record = _record(change_rng, subdir, name, 10_000 + i, names, pick)
        added.append((_filename(record, True), json.dumps(record, separators=(",", ":"))))
    after["packages.conda"] = list(heapq.merge(after["packages.conda"], sorted(added)))
    return before, after


def write_repodata(path: Path, subdir: str, groups: dict) -> int:
    """Write one repodata.json from sorted (filename, json text) lists; returns its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write('{"info":{"subdir":' + json.dumps(subdir) + '},"repodata_version":1')
        for key in ("packages", "packages.conda"):
            out.write(f',"{key}":{{')
            first = True
            for filename, text in groups[key]:
                out.write(("" if first else ",") + json.dumps(filename) + ":" + text)
                first = False
            out.write("}")
        out.write(',"removed":[]}')
    return path.stat().st_size
