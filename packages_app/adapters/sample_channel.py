"""Build the demo's and the tests' sample channel: real packages, indexed by rattler's index_fs.

The sources are in packages_app/demo_data/samples/:
- `recipes/<name>/recipe.yaml`: v1 recipes, built by rattler-build itself
  (adapters/sample_build.py, py-rattler-build, offline, cached by recipe hash);
- `legacy/samples.json` plus its test scripts: packages in conda-build's layout
  (`info/test/run_test.sh`) for the conda-build test path. rattler-build cannot make that layout
  (it writes `info/tests/tests.yaml` and `info/recipe/recipe.yaml`), so these few are assembled
  here with conda-package-handling, and only these.
The channel is built into a directory (the demo uses VAR_DIR/channels/samples) for one subdir,
the machine's own, so that the runners can install and test every package here. What is a
sample and what is real is written in demo_data/PROVENANCE.md. No ORM here.

Files that exist are kept (a rebuild would change their checksums and look like new builds);
every subdir's repodata.json is then written by rattler's `index_fs` from the files present:
no repodata is written by hand.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import conda_package_handling.api as cph

from packages_app.adapters.sample_build import SampleBuildError
from packages_app.adapters.sample_build import build_recipes

NOARCH = "noarch"
RECIPES_DIR = "recipes"
LEGACY_DIR = "legacy"
# 2024-06-04 (the 2.3.1 release day), in ms: fixed, so the metadata does not change per build.
SAMPLE_TIMESTAMP_MS = 1717459200000


class SampleChannelError(Exception):
    """The sample sources are missing or malformed, or a sample could not be built."""


@dataclass(frozen=True)
class SamplePackage:
    name: str
    version: str
    build: str
    summary: str
    filename: str
    path: Path
    builder: str  # "rattler-build" or "conda-package-handling" (conda-build's layout)


@dataclass(frozen=True)
class SampleChannel:
    root: Path
    subdir: str
    packages: tuple[SamplePackage, ...]

    @property
    def url(self) -> str:
        return self.root.resolve().as_uri()

    @property
    def names(self) -> list[str]:
        return sorted({p.name for p in self.packages})

    def summary(self, name: str) -> str:
        return next(p.summary for p in self.packages if p.name == name)


def load_manifest(sources: Path) -> list[dict]:
    """The conda-build-layout samples of `sources/legacy/samples.json`."""
    manifest_path = sources / LEGACY_DIR / "samples.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        packages = manifest["packages"]
    except (OSError, ValueError, KeyError) as exc:
        raise SampleChannelError(f"{manifest_path}: {exc}") from exc
    if not isinstance(packages, list):
        raise SampleChannelError(f"{manifest_path}: 'packages' must be a list")
    return packages


def build_sample_channel(*, sources: Path, target: Path, subdir: str, cache: Path) -> SampleChannel:
    """Every sample package missing from `target`: the recipes built by rattler-build (from
    `cache` when it holds them), the conda-build-layout ones assembled; then index_fs."""
    packages = add_recipe_packages(
        recipes=sources / RECIPES_DIR, target=target, subdir=subdir, cache=cache
    )
    for entry in load_manifest(sources):
        for version in entry["versions"]:
            packages.append(
                _package(entry, version, sources=sources / LEGACY_DIR, target=target, subdir=subdir)
            )
    index_channel(target)
    return SampleChannel(root=target, subdir=subdir, packages=tuple(packages))


def add_recipe_packages(
    *, recipes: Path, target: Path, subdir: str, cache: Path
) -> list[SamplePackage]:
    """The recipes under `recipes` built by rattler-build (from `cache` when it holds them) and
    put into the channel at `target`, unless files of those names are there. Not indexed: the
    caller runs index_channel once it has added everything."""
    (target / subdir).mkdir(parents=True, exist_ok=True)
    (target / NOARCH).mkdir(parents=True, exist_ok=True)
    try:
        built = build_recipes(recipes=recipes, cache=cache)
    except SampleBuildError as exc:
        raise SampleChannelError(str(exc)) from exc
    return [_place(package, target=target, subdir=subdir) for package in built]


def _place(package, *, target: Path, subdir: str) -> SamplePackage:
    """Copy a package rattler-build made into the channel, unless a file of that name is there."""
    if package.subdir not in (subdir, NOARCH):
        raise SampleChannelError(
            f"{package.path.name}: built for {package.subdir}, the channel is for {subdir}"
        )
    path = target / package.subdir / package.path.name
    if not path.exists():
        shutil.copyfile(package.path, path)
    summary = package.summary
    return SamplePackage(
        package.name, package.version, package.build, summary, path.name, path, "rattler-build"
    )


def _package(entry: dict, version: str, *, sources: Path, target: Path, subdir: str):
    name, build = entry["name"], entry["build"]
    filename = f"{name}-{version}-{build}.conda"
    summary = entry["summary"].format(version=version)
    path = target / subdir / filename
    if not path.exists():
        with tempfile.TemporaryDirectory(prefix="sample-") as tmp:
            stage = Path(tmp) / "stage"
            _stage(stage, entry, version=version, summary=summary, sources=sources, subdir=subdir)
            out = Path(tmp) / "out"
            out.mkdir()
            cph.create(str(stage), None, filename, out_folder=str(out))
            shutil.move(out / filename, path)
    return SamplePackage(name, version, build, summary, filename, path, "conda-package-handling")


def _stage(stage: Path, entry: dict, *, version: str, summary: str, sources: Path, subdir: str):
    """The package's files and its info/ folder, as conda-build lays them out (info/test/)."""
    (stage / "info" / "test").mkdir(parents=True)
    files = []
    for destination, source in sorted(entry.get("files", {}).items()):
        text = (sources / source).read_text().replace("@VERSION@", version)
        path = stage / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if destination.startswith("bin/") else 0o644)
        files.append(destination)
    (stage / "info" / "test" / "run_test.sh").write_text((sources / entry["test"]).read_text())
    index = {
        "name": entry["name"],
        "version": version,
        "build": entry["build"],
        "build_number": 0,
        "depends": list(entry.get("depends", [])),
        "license": "BSD-3-Clause",
        "subdir": subdir,
        "timestamp": SAMPLE_TIMESTAMP_MS,
    }
    _write_json(stage / "info" / "index.json", index)
    (stage / "info" / "files").write_text("".join(f"{f}\n" for f in files))
    paths = [
        {
            "_path": f,
            "path_type": "hardlink",
            "sha256": hashlib.sha256((stage / f).read_bytes()).hexdigest(),
            "size_in_bytes": (stage / f).stat().st_size,
        }
        for f in files
    ]
    _write_json(stage / "info" / "paths.json", {"paths": paths, "paths_version": 1})
    _write_json(stage / "info" / "about.json", {"summary": summary, "license": "BSD-3-Clause"})


# rattler's index_fs, run in a child process: rattler's async runtime must not start in a process
# that may fork afterwards (DESIGN.md section 8), and seed_demo or a test may well fork later.
# It leaves through os._exit: rattler's runtime threads may still be alive at interpreter
# finalization, and Python then aborts instead of exiting 0 (as adapters/rattler_runner.py).
_INDEX_PROGRAM = (
    "import asyncio, os, sys\n"
    "from rattler.index import index_fs\n"
    "asyncio.run(index_fs(sys.argv[1], write_zst=False, write_shards=False, force=True))\n"
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n"
)
INDEX_TIMEOUT_S = 300


def index_channel(root: Path) -> None:
    """Write every subdir's repodata.json with rattler's index_fs (no hand-written repodata)."""
    done = subprocess.run(  # noqa: S603 - this Python, a fixed program, the channel's path
        [sys.executable, "-c", _INDEX_PROGRAM, str(root)],
        capture_output=True,
        text=True,
        timeout=INDEX_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise SampleChannelError(
            f"indexing {root} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    for repodata in root.glob("*/repodata.json"):
        repodata.chmod(0o644)  # readable by a web server in front of the channel


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True))
