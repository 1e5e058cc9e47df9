"""Build the sample packages from their v1 recipes with rattler-build itself (py-rattler-build,
the `rattler-build` extra), offline, and keep what was built in a cache.

Each recipe directory (recipe.yaml, an optional variants.yaml, the files its build and tests
read) is built by `Stage0Recipe.render(...)` and `RenderedVariant.run_build(...)` with its tests
skipped at build time (the project's runners run them), against one empty local `file://`
channel: the samples need nothing from any channel to build, so no network is touched.

The cache: one directory per recipe under `cache`, named by a sha256 of the recipe directory's
files and rattler-build's version, holding the built files and a `built.json` listing them. A
changed recipe or another rattler-build makes a new key, hence a new build; an unchanged one is
not rebuilt (rattler-build stamps a build time into each package, so a rebuild would give new
checksums, which a channel sync sees as new builds). No ORM here.

Host variables: a recipe may read `${{ env.get("SAMPLE_HOST_...") }}` (see
`host_stand_in_variables`): the interpreter and pip of the Python that builds. The `python` and
`pip` STAND-INS of tests/testing_app/recipes/python-samples use them to wrap this machine's
interpreter, so that python tests (imports, pip check) can run offline. The values of the
variables a recipe names are part of its cache key: another interpreter or pip, another build.
"""

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RECIPE_FILE = "recipe.yaml"
VARIANTS_FILE = "variants.yaml"
BUILT_LIST = "built.json"
BUILD_TIMEOUT_S = 600
HOST_VARIABLE_PREFIX = "SAMPLE_HOST_"


class SampleBuildError(Exception):
    """A recipe could not be built (or py-rattler-build is missing)."""


@dataclass(frozen=True)
class BuiltPackage:
    name: str
    version: str
    build: str
    subdir: str
    summary: str
    path: Path


def rattler_build_version() -> str:
    """py-rattler-build's version, read from its metadata (importing it is not needed)."""
    try:
        return importlib.metadata.version("py-rattler-build")
    except importlib.metadata.PackageNotFoundError as exc:
        raise SampleBuildError(
            "building the sample packages needs py-rattler-build "
            "(pip install 'conda-distro[rattler-build]')"
        ) from exc


def host_stand_in_variables() -> dict[str, str]:
    """What the python and pip stand-in recipes read about the Python that builds them: the
    real interpreter binary (a venv's base interpreter, links resolved), its version, and the
    folder holding pip and its dist-info. Without pip in this environment its variables are
    left out: only a recipe that names them fails (build_recipes says why)."""
    variables = {
        f"{HOST_VARIABLE_PREFIX}PYTHON": os.path.realpath(sys._base_executable),
        f"{HOST_VARIABLE_PREFIX}PYTHON_VERSION": platform.python_version(),
    }
    try:
        pip = importlib.metadata.distribution("pip")
    except importlib.metadata.PackageNotFoundError:
        return variables
    variables[f"{HOST_VARIABLE_PREFIX}PIP_VERSION"] = pip.version
    variables[f"{HOST_VARIABLE_PREFIX}PIP_SITE"] = str(Path(pip.locate_file("")).resolve())
    return variables


def recipe_key(recipe_dir: Path, builder_version: str, variables: dict | None = None) -> str:
    """sha256 over rattler-build's version, every file of the recipe directory (relative path
    and bytes) in a stable order, and the host variables its files name (name and value)."""
    digest = hashlib.sha256(f"rattler-build {builder_version}\n".encode())
    for path in _recipe_files(recipe_dir):
        relative = path.relative_to(recipe_dir).as_posix()
        data = path.read_bytes()
        digest.update(f"{relative}\n{len(data)}\n".encode())
        digest.update(data)
    for name in sorted(named_host_variables(recipe_dir)):
        value = (variables or {}).get(name)
        digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()


def named_host_variables(recipe_dir: Path) -> set[str]:
    """The SAMPLE_HOST_* variables the files of a recipe directory name."""
    pattern = re.compile(rf"{HOST_VARIABLE_PREFIX}[A-Z_]+")
    return {
        name
        for path in _recipe_files(recipe_dir)
        for name in pattern.findall(path.read_bytes().decode(errors="replace"))
    }


def _recipe_files(recipe_dir: Path) -> list[Path]:
    return sorted(p for p in recipe_dir.rglob("*") if p.is_file())


def recipe_dirs(recipes: Path) -> list[Path]:
    """The directories under `recipes` that hold a recipe.yaml, by name."""
    found = sorted(p.parent for p in recipes.glob(f"*/{RECIPE_FILE}"))
    if not found:
        raise SampleBuildError(f"{recipes}: no */{RECIPE_FILE}")
    return found


def build_recipes(*, recipes: Path, cache: Path) -> list[BuiltPackage]:
    """Every recipe under `recipes`, built for this machine, from `cache` where it holds the
    recipe's current key; the others are built (all in one child process) and cached."""
    version = rattler_build_version()
    variables = host_stand_in_variables()
    cache.mkdir(parents=True, exist_ok=True)
    entries = {
        d: cache / f"{d.name}-{recipe_key(d, version, variables)[:20]}"
        for d in recipe_dirs(recipes)
    }
    missing = [d for d, entry in entries.items() if not (entry / BUILT_LIST).is_file()]
    for recipe_dir in missing:
        unknown = sorted(named_host_variables(recipe_dir) - set(variables))
        if unknown:
            raise SampleBuildError(
                f"{recipe_dir.name}: this Python cannot give {', '.join(unknown)} "
                "(the pip stand-in needs pip installed next to it)"
            )
    if missing:
        _build_into_cache(missing, entries, variables)
    built = []
    for entry in entries.values():
        built += _read_built_list(entry)
    return built


def _build_into_cache(
    recipe_dirs_to_build: list[Path], entries: dict[Path, Path], variables: dict[str, str]
) -> None:
    cache = next(iter(entries.values())).parent
    with tempfile.TemporaryDirectory(prefix=".building-", dir=cache) as tmp:
        work = Path(tmp)
        done = subprocess.run(  # noqa: S603 - this Python, a fixed program, paths we chose
            [sys.executable, "-c", _BUILD_PROGRAM, str(work), *map(str, recipe_dirs_to_build)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
            env=_build_env(variables),
        )
        if done.returncode != 0:
            raise SampleBuildError(
                f"rattler-build failed (exit {done.returncode}): {done.stderr.strip()[-3000:]}"
            )
        results = json.loads(done.stdout)
        for recipe_dir in recipe_dirs_to_build:
            staged = work / "cache" / recipe_dir.name
            staged.mkdir(parents=True)
            listing = []
            for result in results[str(recipe_dir)]:
                source = Path(result.pop("path"))
                shutil.move(source, staged / source.name)
                listing.append({**result, "filename": source.name})
            (staged / BUILT_LIST).write_text(json.dumps(listing, indent=1, sort_keys=True))
            # An entry appears whole or not at all (a rename of the complete folder); if another
            # seed_demo or test session put one there meanwhile, its files are kept.
            try:
                staged.rename(entries[recipe_dir])
            except OSError:
                if not (entries[recipe_dir] / BUILT_LIST).is_file():
                    raise


def _build_env(variables: dict[str, str]) -> dict[str, str]:
    """This environment, with the system's default command path after PATH (the recipes'
    build scripts run a shell and coreutils (mkdir, sed, chmod), also when the caller's PATH was
    narrowed, as a demo check that hides redis-server does) and the host variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(HOST_VARIABLE_PREFIX)}
    env.update(variables)
    entries = [*env.get("PATH", "").split(os.pathsep), *os.defpath.split(os.pathsep)]
    env["PATH"] = os.pathsep.join(dict.fromkeys(e for e in entries if e))
    return env


def _read_built_list(entry: Path) -> list[BuiltPackage]:
    listing = json.loads((entry / BUILT_LIST).read_text())
    return [
        BuiltPackage(
            name=item["name"],
            version=item["version"],
            build=item["build"],
            subdir=item["subdir"],
            summary=item["summary"],
            path=entry / item["filename"],
        )
        for item in listing
    ]


# rattler-build runs in a child process: its async runtime must not start in a process that may
# fork afterwards (DESIGN.md section 8), and seed_demo or a test may well fork later. The child
# indexes an empty local channel with index_fs (rattler-build wants at least one channel; the
# samples need nothing from it), builds every variant of each recipe with tests skipped, prints
# one JSON object (recipe dir -> built packages) and leaves through os._exit: rattler's runtime
# threads may still be alive at interpreter finalization (as adapters/sample_channel.py).
_BUILD_PROGRAM = """
import asyncio, json, os, sys
from pathlib import Path
import rattler_build as rb
from rattler.index import index_fs

work = Path(sys.argv[1])
channel = work / "empty-channel"
(channel / "noarch").mkdir(parents=True)
asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
results = {}
for number, recipe_dir in enumerate(map(Path, sys.argv[2:])):
    variants = recipe_dir / "variants.yaml"
    config = rb.VariantConfig.from_file(variants) if variants.is_file() else rb.VariantConfig()
    recipe = rb.Stage0Recipe.from_file(recipe_dir / "recipe.yaml")
    results[str(recipe_dir)] = []
    for variant in recipe.render(config):
        built = variant.run_build(
            output_dir=work / f"out-{number}",
            channels=[channel.resolve().as_uri()],
            tool_config=rb.ToolConfiguration(test_strategy="skip"),
            no_build_id=True,
        )
        summary = variant.recipe.about.summary or ""
        for path in built.packages:
            results[str(recipe_dir)].append({
                "name": built.name, "version": built.version, "build": built.build_string,
                "subdir": built.platform, "summary": str(summary), "path": str(path),
            })
sys.stdout.write(json.dumps(results))
sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
"""
