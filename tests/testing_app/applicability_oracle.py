"""An oracle for cell applicability, written apart from the planner: brute force over the raw
repodata records, one cell at a time, no caches, no equivalence classes, no catalog types.

The definition it checks (issue: applicability by co-installability): a cell (build B, PyTorch
version V, variant X, platform P, python Y) is applicable when some PyTorch record of version V
for P, that X's environment claims, can be installed with B by both records' own metadata:
- every `depends` of B and of that PyTorch record on a name the environment holds (python Y,
  the machine's virtual packages, X's probe records) matches it, every `constrains` on such a
  name too, and a `depends` on a virtual package the machine lacks never fits;
- the PyTorch record is X's: it depends on accelerator packages exactly when X is a CUDA
  variant, and only on ones X's environment holds;
- B's specs on PyTorch match it; its specs on B match B; names both mention that the raw
  records hold are satisfied by one record.
"unknown" when no PyTorch record of version V for P exists at all. The variants' environments
are the shared definition (testing_app/planner/variant_selectors.py); everything else is here.
"""

from functools import cache

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord
from rattler import Version

from testing_app.planner.variant_selectors import ACCELERATOR_NAMES
from testing_app.planner.variant_selectors import TORCH_BUILD_NAMES
from testing_app.planner.variant_selectors import environments_of

APPLICABLE, NOT_APPLICABLE, UNKNOWN = "applicable", "not_applicable", "unknown"


@cache
def _spec(text: str) -> MatchSpec:
    """Parsing is a pure function of the text: memoized so the brute force stays affordable;
    every per-cell decision below is still made from scratch."""
    return MatchSpec(text)


def _name(spec_text: str) -> str:
    return _spec(spec_text).name.normalized


def _record(raw: dict) -> PackageRecord:
    return PackageRecord(
        name=raw["name"],
        version=raw["version"],
        build=BuildString(raw["build"]),
        build_number=0,
        subdir=raw.get("subdir", ""),
    )


def _probe(name: str, version: str, build: str) -> PackageRecord:
    return PackageRecord(
        name=name, version=version, build=BuildString(build), build_number=0, subdir="noarch"
    )


def _is_torch_build(raw: dict) -> bool:
    return raw["name"] in TORCH_BUILD_NAMES and not any(
        _name(d) in TORCH_BUILD_NAMES for d in raw.get("depends", ())
    )


def _fits(raw: dict, held: dict) -> bool:
    for text in raw.get("depends", ()):
        spec = _spec(text)
        name = spec.name.normalized
        if name in held:
            if not spec.matches(held[name]):
                return False
        elif name.startswith("__"):
            return False
    for text in raw.get("constrains", ()):
        spec = _spec(text)
        name = spec.name.normalized
        if name in held and not spec.matches(held[name]):
            return False
    return True


def _is_variant_build(torch: dict, held: dict, cuda: bool) -> bool:
    accelerators = {_name(d) for d in torch.get("depends", ())} & ACCELERATOR_NAMES
    if any(name not in held for name in accelerators):
        return False
    return bool(accelerators) == cuda and _fits(torch, held)


def _together(
    build: dict, torch: dict, records_by_name: dict[str, list[dict]], subdir: str, held: dict
) -> bool:
    build_specs = [*build.get("depends", ()), *build.get("constrains", ())]
    torch_specs = [*torch.get("depends", ()), *torch.get("constrains", ())]
    torch_record, build_record = _record(torch), _record(build)
    for text in build_specs:
        spec = _spec(text)
        name = spec.name.normalized
        if name == torch["name"] and not spec.matches(torch_record):
            return False
        if name in TORCH_BUILD_NAMES and name != torch["name"]:
            version = spec.version
            if version is not None and not _admits(str(version), torch["version"]):
                return False
    for text in torch_specs:
        spec = _spec(text)
        if spec.name.normalized == build["name"] and not spec.matches(build_record):
            return False
    build_depends = {_name(t) for t in build.get("depends", ())}
    torch_depends = {_name(t) for t in torch.get("depends", ())}
    shared = {_name(t) for t in build_specs} & {_name(t) for t in torch_specs}
    for name in shared:
        if name in held or name in TORCH_BUILD_NAMES or name.startswith("__") or name == "python":
            continue
        if name not in build_depends and name not in torch_depends:
            continue
        candidates = [
            r for r in records_by_name.get(name, ()) if r.get("subdir") in (subdir, "noarch")
        ]
        if not candidates:
            continue
        specs = [_spec(t) for t in (*build_specs, *torch_specs) if _name(t) == name]
        if not any(all(s.matches(_record(r)) for s in specs) for r in candidates):
            return False
    return True


def _admits(version_spec: str, version: str) -> bool:
    return _spec(f"x {version_spec}").matches(_probe("x", version, "0"))


@cache
def _version(text: str) -> Version:
    return Version(text)


def _bound_excludes(build: dict, release: str) -> bool:
    """B's own specs on PyTorch (any of its names) do not admit the release's version."""
    for text in (*build.get("depends", ()), *build.get("constrains", ())):
        spec = _spec(text)
        bounded = spec.name.normalized in TORCH_BUILD_NAMES and spec.version is not None
        if bounded and not _admits(str(spec.version), release):
            return True
    return False


def judge_cell(
    build: dict,
    release: str,
    variant: dict,
    subdir: str,
    python: str,
    records_by_name: dict[str, list[dict]],
    platform_virtual: list[tuple[str, str]],
) -> str:
    """APPLICABLE, NOT_APPLICABLE or UNKNOWN for one cell, by brute force over the raw records
    (`records_by_name`: the records grouped by package name, nothing else precomputed)."""
    environments = environments_of(variant["kind"], variant["version"], variant["driver"])
    if _is_torch_build(build):
        if _version(build["version"]) != _version(release):
            return NOT_APPLICABLE
        torches = [build]
    else:
        if _bound_excludes(build, release):
            return NOT_APPLICABLE
        torches = [
            r
            for name in sorted(TORCH_BUILD_NAMES)
            for r in records_by_name.get(name, ())
            if r.get("subdir") in (subdir, "noarch")
            and _version(r["version"]) == _version(release)
            and _is_torch_build(r)
        ]
        if not torches:
            return UNKNOWN if environments else NOT_APPLICABLE
    for env in environments:
        held = {}
        texts = [f"{n} {v} 0" for n, v in platform_virtual]
        texts += [*env.virtual, *env.records]
        if python:
            texts.append(f"python {python} 0")
        for text in texts:
            name, version, build_string = text.split()
            held[name] = _probe(name, version, build_string)
        for torch in torches:
            if not _is_variant_build(torch, held, env.needs_accelerator):
                continue
            if torch is build:
                return APPLICABLE
            if _fits(build, held) and _together(build, torch, records_by_name, subdir, held):
                return APPLICABLE
    return NOT_APPLICABLE
