"""Upper-bound lint: does a build (or a recipe output) bound PyTorch and its key dependencies?

One implementation for builds (package pages, the promotion gate, `manage.py lint_report`) and
for proposals' recipes (recipe_checks). Every spec is read by py-rattler; the versions a spec
admits are found by probing it with a grid of X.Y.Z versions, so no spec is parsed by hand and
no list of real releases is needed.

Codes:
- ``pytorch-unbounded`` (error): the PyTorch dependency admits every future release.
- ``pytorch-excludes-bugfix`` (error): the newest release it admits cannot get its bugfix
  release (``<=2.5.0``, or ``==2.5.0`` on a package that is not ABI-coupled).
- ``abi-not-pinned`` (error): an ABI-coupled package admits more than one PyTorch minor series.
- ``key-dependency-unbounded`` (warning): numpy or python without an upper bound (python is
  exempt on ``noarch: python`` builds, which cannot bound it).
- ``spec-invalid`` (error): a PyTorch spec py-rattler cannot read, so nothing can be verified.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rattler import MatchSpec
from rattler import Version
from rattler import VersionSpec
from rattler.exceptions import InvalidMatchSpecError
from rattler.exceptions import InvalidVersionSpecError

if TYPE_CHECKING:
    from packages_app.models import Build

ERROR = "error"
WARNING = "warning"

PYTORCH_UNBOUNDED = "pytorch-unbounded"
PYTORCH_EXCLUDES_BUGFIX = "pytorch-excludes-bugfix"
ABI_NOT_PINNED = "abi-not-pinned"
KEY_DEPENDENCY_UNBOUNDED = "key-dependency-unbounded"
SPEC_INVALID = "spec-invalid"

# Every code with its severity and a one-line title, in the order pages list them.
CODES = {
    PYTORCH_UNBOUNDED: (ERROR, "PyTorch dependency without an upper bound"),
    PYTORCH_EXCLUDES_BUGFIX: (ERROR, "PyTorch bound excludes bugfix releases"),
    ABI_NOT_PINNED: (ERROR, "ABI-coupled package does not pin one PyTorch minor"),
    SPEC_INVALID: (ERROR, "PyTorch spec cannot be read"),
    KEY_DEPENDENCY_UNBOUNDED: (WARNING, "Key dependency without an upper bound"),
}

# The names under which PyTorch itself appears in conda channels (same as the catalog's).
PYTORCH_NAMES = frozenset({"pytorch", "pytorch-cpu", "pytorch-gpu", "libtorch"})
# Dependencies whose next major release breaks packages as surely as a new PyTorch does.
KEY_DEPENDENCIES = ("python", "numpy")
# A bound on these bounds the key dependency too: conda-forge's newer builds depend on a bare
# `python` plus `python_abi 3.14.* *_cp314`, which pins the interpreter series.
KEY_DEPENDENCY_PINS = {"python": "python_abi"}
# A version no real release will reach: a spec that admits it has no upper bound.
UNBOUNDED_PROBE = Version("9999")


@dataclass(frozen=True)
class LintFinding:
    """One problem of one build's (or recipe output's) specs."""

    code: str
    severity: str  # "error" | "warning"
    message: str
    spec: str


@lru_cache(maxsize=1)
def _probe_versions() -> tuple[Version, ...]:
    # Every X.Y.Z a bound could plausibly mean; sorted, so the last admitted one is the newest.
    return tuple(
        Version(f"{major}.{minor}.{patch}")
        for major in range(10)
        for minor in range(41)
        for patch in range(13)
    )


@lru_cache(maxsize=8192)
def _parse(spec: str) -> tuple[str, str | None]:
    """(normalized name, version constraint or None) of one spec; raises InvalidMatchSpecError."""
    match_spec = MatchSpec(spec)
    name = match_spec.name.normalized if match_spec.name is not None else ""
    return name, match_spec.version


def spec_name(spec: str) -> str:
    """The spec's package name, or its first word when py-rattler cannot read the spec."""
    try:
        return _parse(spec)[0]
    except InvalidMatchSpecError:
        return spec.split()[0].lower() if spec.split() else ""


@dataclass(frozen=True)
class _Admitted:
    constraints: tuple[str, ...]
    unbounded: bool
    versions: tuple[Version, ...]  # admitted grid versions, oldest first

    def admits(self, version: Version) -> bool:
        return all(VersionSpec(c).matches(version) for c in self.constraints)

    @property
    def minors(self) -> list[tuple[int, int]]:
        return sorted({v.as_major_minor() for v in self.versions})


@lru_cache(maxsize=4096)
def _admitted(constraints: tuple[str, ...]) -> _Admitted:
    """What a conjunction of version constraints admits (cached: real channels repeat them)."""
    specs = [VersionSpec(c) for c in constraints]

    def admits(version: Version) -> bool:
        return all(s.matches(version) for s in specs)

    return _Admitted(
        constraints=constraints,
        unbounded=admits(UNBOUNDED_PROBE),
        versions=tuple(v for v in _probe_versions() if admits(v)),
    )


def _constraints(specs: list[str]) -> tuple[str, ...]:
    return tuple(version for _, version in map(_parse, specs) if version is not None)


def lint_build_depends(
    *,
    name: str,
    depends: list[str],
    constrains: list[str],
    abi_coupled: bool,
    noarch: str = "",
) -> list[LintFinding]:
    """Lint one build's `depends`/`constrains` (or a recipe output's run/run_constrained).

    PyTorch is judged on its `depends` specs together with any `constrains` on it; a build
    that does not depend on PyTorch (or is PyTorch) gets no PyTorch findings.
    """
    findings: list[LintFinding] = []
    if name.lower() not in PYTORCH_NAMES:
        findings.extend(_lint_pytorch(depends, constrains, abi_coupled=abi_coupled))
    for key in KEY_DEPENDENCIES:
        if key == "python" and noarch == "python":
            continue
        specs = [s for s in depends if spec_name(s) == key]
        pins = [s for s in depends if spec_name(s) == KEY_DEPENDENCY_PINS.get(key)]
        if specs and pins:
            specs = specs + pins
        try:
            admitted = _admitted(_constraints(specs)) if specs else None
        except (InvalidMatchSpecError, InvalidVersionSpecError):
            continue  # only PyTorch specs are held to being readable
        if admitted is not None and admitted.unbounded:
            spec = " and ".join(specs)
            findings.append(
                LintFinding(
                    code=KEY_DEPENDENCY_UNBOUNDED,
                    severity=WARNING,
                    message=f"{spec} has no upper bound: a new {key} major release would be "
                    "installed with it untested.",
                    spec=spec,
                )
            )
    return findings


def _lint_pytorch(
    depends: list[str], constrains: list[str], *, abi_coupled: bool
) -> list[LintFinding]:
    dependency = [s for s in depends if spec_name(s) in PYTORCH_NAMES]
    if not dependency:
        return []
    specs = dependency + [s for s in constrains if spec_name(s) in PYTORCH_NAMES]
    spec = " and ".join(specs)
    try:
        admitted = _admitted(_constraints(specs))
    except (InvalidMatchSpecError, InvalidVersionSpecError) as exc:
        return [LintFinding(SPEC_INVALID, ERROR, f"{spec} cannot be read: {exc}", spec)]
    findings = []
    if admitted.unbounded:
        findings.append(
            LintFinding(
                PYTORCH_UNBOUNDED,
                ERROR,
                f"{spec} has no upper bound: a future PyTorch would be installed with it "
                "untested. Bound it below the next minor release, e.g. <2.6.",
                spec,
            )
        )
    minors = admitted.minors
    if abi_coupled and (admitted.unbounded or len(minors) > 1):
        findings.append(
            LintFinding(ABI_NOT_PINNED, ERROR, _abi_message(spec, admitted, minors), spec)
        )
    # An ABI-coupled build pins its one series on purpose: only a span of series can be wrong.
    bugfix_applies = not abi_coupled or len(minors) > 1
    if not admitted.unbounded and bugfix_applies:
        message = _bugfix_exclusion(spec, admitted)
        if message:
            findings.append(LintFinding(PYTORCH_EXCLUDES_BUGFIX, ERROR, message, spec))
    return findings


def _abi_message(spec: str, admitted: _Admitted, minors: list[tuple[int, int]]) -> str:
    if admitted.unbounded:
        span = "every future PyTorch release"
    else:
        first, last = minors[0], minors[-1]
        span = f"{len(minors)} PyTorch minor series ({first[0]}.{first[1]} to {last[0]}.{last[1]})"
    return (
        f"{spec} admits {span}, but an ABI-coupled build only works with the PyTorch it was "
        "built against: pin that one, e.g. pytorch ==X.Y.Z or X.Y.*."
    )


def _bugfix_exclusion(spec: str, admitted: _Admitted) -> str:
    """Why the bound keeps out a bugfix release ("" when it does not)."""
    if not admitted.versions:
        return (
            f"{spec} admits no PyTorch X.Y.Z release (a pre-release or dev pin), so no bugfix "
            "release either."
        )
    newest = admitted.versions[-1]
    bugfix = newest.bump_patch()
    if admitted.admits(bugfix):
        return ""
    return f"{spec} excludes {bugfix}, a bugfix release of {newest}; prefer <{newest.bump_minor()}"


@dataclass(frozen=True)
class PytorchConstraint:
    """What one build's specs allow of PyTorch (for release impact): which specs, whether
    they bound it from above, and whether they admit a given version."""

    specs: tuple[str, ...]
    unbounded: bool
    readable: bool
    constraints: tuple[str, ...] = ()

    def admits(self, version: Version) -> bool:
        return self.readable and all(VersionSpec(c).matches(version) for c in self.constraints)


def pytorch_constraint(*, depends: list[str], constrains: list[str]) -> PytorchConstraint | None:
    """The PyTorch constraint of a build; None when it does not depend on PyTorch."""
    dependency = [s for s in depends if spec_name(s) in PYTORCH_NAMES]
    if not dependency:
        return None
    specs = tuple(dependency + [s for s in constrains if spec_name(s) in PYTORCH_NAMES])
    try:
        admitted = _admitted(_constraints(list(specs)))
    except (InvalidMatchSpecError, InvalidVersionSpecError):
        return PytorchConstraint(specs=specs, unbounded=False, readable=False)
    return PytorchConstraint(
        specs=specs,
        unbounded=admitted.unbounded,
        readable=True,
        constraints=admitted.constraints,
    )


def lint_build(build: "Build", *, abi_coupled: bool | None = None) -> list[LintFinding]:
    """Lint one catalog build; `abi_coupled` defaults to its package's flag (False without)."""
    if abi_coupled is None:
        abi_coupled = bool(build.package_id and build.package.abi_coupled)
    findings = lint_build_depends(
        name=build.name,
        depends=list(build.depends or []),
        constrains=list(build.constrains or []),
        abi_coupled=abi_coupled,
        # Some records (e.g. out of lock files) lose their `noarch` field; one in the noarch
        # subdir that depends on python is a noarch: python package all the same.
        noarch=build.noarch or ("python" if build.subdir == "noarch" else ""),
    )
    return [*findings, *unreadable_spec_findings(build, findings)]


def has_errors(findings: list[LintFinding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def unreadable_spec_findings(build: "Build", findings: list[LintFinding]) -> list[LintFinding]:
    """`spec-invalid` for every depends/constrains spec of a catalog build that py-rattler cannot
    read (a channel sync keeps such a build, and the planner cannot test it: it says so here),
    except PyTorch specs, which the PyTorch lint above already reports."""
    reported = {f.spec for f in findings if f.code == SPEC_INVALID}
    extra = []
    for field_name in ("depends", "constrains"):
        for spec in getattr(build, field_name) or []:
            if spec in reported:
                continue
            try:
                _parse(spec)
            except InvalidMatchSpecError as exc:
                extra.append(
                    LintFinding(
                        SPEC_INVALID,
                        ERROR,
                        f"{field_name} spec {spec} cannot be read: {exc}; the build cannot be "
                        "planned or tested until it is fixed",
                        spec,
                    )
                )
    return extra
