"""The pre-check rules a proposed recipe is held to, as pure functions over a rendered recipe.

Each rule returns a CheckResult (pass / warn / fail with an explanation a proposer can act on).
Version questions go through py-rattler; catalog lookups come in as data, so the rules run
without a database and are tested on recipe texts alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord
from rattler import Version
from rattler.exceptions import InvalidMatchSpecError

from packages_app.lint import rules as lint
from packages_app.lint.rules import PYTORCH_NAMES
from packages_app.lint.rules import lint_build_depends

if TYPE_CHECKING:
    # Types only: the adapter renders the recipe; these rules read the result.
    from packages_app.adapters.recipe import RecipeOutput
    from packages_app.adapters.recipe import RenderedRecipe

PASS = "pass"
WARN = "warn"
FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """One pre-check's verdict; stored as a dict in Proposal.precheck_results."""

    check: str
    title: str
    outcome: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "title": self.title,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CatalogRecord:
    """A build of the configured channels, as the dependency check needs it."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    channel: str


def overall_outcome(results: Iterable[CheckResult]) -> str:
    """fail if any check failed, warn if any warned, else pass."""
    outcomes = {r.outcome for r in results}
    if FAIL in outcomes:
        return FAIL
    return WARN if WARN in outcomes else PASS


def check_builds_proposed_package(recipe: RenderedRecipe, package_name: str) -> CheckResult:
    title = "Recipe builds the proposed package"
    names = sorted(recipe.output_names)
    if package_name in recipe.output_names:
        return CheckResult("builds_package", title, PASS, f"The recipe builds {package_name}.")
    return CheckResult(
        "builds_package",
        title,
        FAIL,
        f"The recipe builds {', '.join(names)}, not {package_name}: "
        "check the name or the recipe URL.",
    )


def check_outputs(recipe: RenderedRecipe) -> CheckResult:
    title = "Outputs"
    if recipe.skipped:
        return CheckResult(
            "outputs",
            title,
            WARN,
            f"build: skip is true when rendered for {recipe.target.describe()}.",
        )
    if not recipe.has_outputs_section:
        return CheckResult("outputs", title, PASS, f"One package: {recipe.outputs[0].name}.")
    names = ", ".join(o.name for o in recipe.outputs)
    return CheckResult(
        "outputs",
        title,
        PASS,
        f"{len(recipe.outputs)} outputs ({names}); "
        "each output's tests and requirements are checked.",
    )


def check_tests(
    recipe: RenderedRecipe, package_name: str, *, sibling_scripts: Iterable[str] = ()
) -> CheckResult:
    """The proposed package must have runnable tests; other outputs without tests warn."""
    title = "Test section"
    siblings = tuple(sibling_scripts)
    described = []
    untested = []
    proposed_tested = False
    for output in recipe.outputs:
        scripts = siblings if output.is_top_level else ()
        if output.tests.runnable or scripts:
            summary = output.tests.describe() if output.tests.runnable else ""
            if scripts:
                summary = "; ".join(
                    filter(None, [summary, "next to the recipe: " + ", ".join(scripts)])
                )
            described.append(f"{output.name}: {summary}")
            proposed_tested = proposed_tested or output.name == package_name
        else:
            untested.append(output.name)
    if package_name in recipe.output_names and not proposed_tested:
        return CheckResult(
            "test_section",
            title,
            FAIL,
            f"{package_name} has no tests: add test: imports: (the module names), commands:, "
            "or a run_test.py/run_test.sh next to the recipe; conda-build --test has nothing "
            "to run otherwise.",
        )
    if not described:
        return CheckResult(
            "test_section", title, FAIL, "No output of the recipe has runnable tests."
        )
    detail = "Tests: " + " · ".join(described) + "."
    if untested:
        return CheckResult(
            "test_section", title, WARN, detail + f" Without tests: {', '.join(untested)}."
        )
    return CheckResult("test_section", title, PASS, detail)


def _pytorch_specs(output: RecipeOutput) -> tuple[list[str], list[str]]:
    """(pytorch specs as written, specs that do not parse) among run and run_constrained."""
    found, broken = [], []
    for spec in (*output.run, *output.run_constrained):
        try:
            match_spec = MatchSpec(spec)
        except InvalidMatchSpecError:
            if spec.split()[0] in PYTORCH_NAMES:
                broken.append(spec)
            continue
        if match_spec.name is not None and match_spec.name.normalized in PYTORCH_NAMES:
            found.append(spec)
    return found, broken


def _lint_output(output: RecipeOutput, *, depends: tuple[str, ...] | None = None):
    """The upper-bound lint (lint/rules.py, shared with builds and the gate) of one output.

    A proposal does not say whether the package is ABI-coupled; such recipes pin PyTorch at
    build time (pin_compatible), which the checks below recognise before linting.
    """
    return lint_build_depends(
        name=output.name,
        depends=list(output.run if depends is None else depends),
        constrains=list(output.run_constrained),
        abi_coupled=False,
        noarch=output.noarch,
    )


def check_pytorch_upper_bound(recipe: RenderedRecipe) -> CheckResult:
    """Every output depending on PyTorch bounds it from above (or pins it at build time)."""
    title = "Upper bound on PyTorch"
    bounded, unbounded, pinned, broken = [], [], [], []
    for output in recipe.outputs:
        specs, bad = _pytorch_specs(output)
        broken.extend(bad)
        if not specs:
            continue
        pin = next((recipe.build_time_pins[s] for s in specs if s in recipe.build_time_pins), None)
        if pin:
            pinned.append(f"{output.name} ({pin} sets it at build time)")
            continue
        findings = {f.code: f for f in _lint_output(output)}
        if lint.SPEC_INVALID in findings:
            broken.append(findings[lint.SPEC_INVALID].spec)
        elif lint.PYTORCH_UNBOUNDED in findings:
            unbounded.append(f"{output.name}: {findings[lint.PYTORCH_UNBOUNDED].message}")
        else:
            bounded.append(f"{output.name}: {' and '.join(specs)}")
    if broken:
        return CheckResult("pytorch_upper_bound", title, FAIL, f"Cannot parse {', '.join(broken)}.")
    if not (bounded or unbounded or pinned):
        return CheckResult(
            "pytorch_upper_bound",
            title,
            FAIL,
            "No output has a run requirement on pytorch; the distribution takes packages with "
            "PyTorch as a key dependency.",
        )
    if unbounded:
        return CheckResult("pytorch_upper_bound", title, FAIL, "; ".join(unbounded))
    return CheckResult("pytorch_upper_bound", title, PASS, "; ".join(bounded + pinned) + ".")


def check_pytorch_bugfix_releases(recipe: RenderedRecipe) -> CheckResult | None:
    """A bound must admit the bugfix releases of the newest series it admits (<2.6, not <=2.5.0).

    A warning at proposal time (the recipe can still be fixed before the first build is
    staged); the promotion gate holds the builds themselves to the same lint as an error. None
    when no output bounds PyTorch (the upper-bound check already reports that).
    """
    title = "Bounds admit PyTorch bugfix releases"
    too_tight, fine = [], []
    for output in recipe.outputs:
        specs, broken = _pytorch_specs(output)
        if broken or not specs or any(s in recipe.build_time_pins for s in specs):
            continue
        codes = {f.code: f for f in _lint_output(output)}
        if lint.PYTORCH_UNBOUNDED in codes or lint.SPEC_INVALID in codes:
            continue
        if lint.PYTORCH_EXCLUDES_BUGFIX in codes:
            too_tight.append(f"{output.name}: {codes[lint.PYTORCH_EXCLUDES_BUGFIX].message}")
        else:
            fine.append(f"{output.name}: {' and '.join(specs)} admits them")
    if too_tight:
        return CheckResult("pytorch_bugfix", title, WARN, "; ".join(too_tight) + ".")
    if not fine:
        return None
    return CheckResult("pytorch_bugfix", title, PASS, "; ".join(fine) + ".")


def check_key_dependency_bounds(recipe: RenderedRecipe) -> CheckResult | None:
    """numpy and python with a version range should bound it from above (a warning).

    A bare name is left alone: conda-build pins it from the host environment at build time.
    None when no output states a range for a key dependency.
    """
    title = "Upper bounds on key dependencies"
    warnings, checked = [], []
    for output in recipe.outputs:
        ranged = tuple(
            s
            for s in output.run
            if lint.spec_name(s) not in lint.KEY_DEPENDENCIES or _has_version(s)
        )
        keys = [
            s
            for s in ranged
            if lint.spec_name(s) in lint.KEY_DEPENDENCIES
            and not (lint.spec_name(s) == "python" and output.noarch == "python")
        ]
        if not keys:
            continue
        checked.extend(f"{output.name}: {s}" for s in keys)
        warnings.extend(
            f"{output.name}: {f.message}"
            for f in _lint_output(output, depends=ranged)
            if f.code == lint.KEY_DEPENDENCY_UNBOUNDED
        )
    if warnings:
        return CheckResult("key_dependency_bounds", title, WARN, "; ".join(warnings))
    if not checked:
        return None
    return CheckResult("key_dependency_bounds", title, PASS, "; ".join(checked) + ".")


def _has_version(spec: str) -> bool:
    try:
        return MatchSpec(spec).version is not None
    except InvalidMatchSpecError:
        return False


def run_requirement_names(recipe: RenderedRecipe) -> set[str]:
    """Names the dependency check must look up (not virtual, not built by the recipe itself)."""
    names = set()
    for output in recipe.outputs:
        for spec in output.run:
            try:
                name = MatchSpec(spec).name
            except InvalidMatchSpecError:
                continue
            if name is not None and not name.normalized.startswith("__"):
                names.add(name.normalized)
    return names - recipe.output_names


def check_dependencies_resolve(
    recipe: RenderedRecipe, catalog: dict[str, list[CatalogRecord]], *, catalog_is_empty: bool
) -> CheckResult:
    """Each run requirement matches at least one live build in the configured channels."""
    title = "Run dependencies are in the configured channels"
    if catalog_is_empty:
        return CheckResult(
            "dependencies_resolve",
            title,
            WARN,
            "The catalog has no builds yet, so dependencies could not be looked up "
            "(import the channels' repodata first).",
        )
    unresolved, broken, resolved = [], [], 0
    for spec in sorted({s for o in recipe.outputs for s in o.run}):
        try:
            match_spec = MatchSpec(spec)
        except InvalidMatchSpecError as exc:
            broken.append(f"{spec} ({exc})")
            continue
        name = match_spec.name.normalized if match_spec.name is not None else ""
        if not name or name.startswith("__") or name in recipe.output_names:
            continue
        if any(match_spec.matches(_package_record(r)) for r in catalog.get(name, ())):
            resolved += 1
        elif name in catalog:
            versions = sorted({r.version for r in catalog[name]}, key=Version)[-3:]
            unresolved.append(f"{spec} (the channels have {name} {', '.join(versions)}…)")
        else:
            unresolved.append(f"{spec} (no package named {name})")
    if broken:
        return CheckResult("dependencies_resolve", title, FAIL, "Cannot parse " + "; ".join(broken))
    if unresolved:
        return CheckResult(
            "dependencies_resolve",
            title,
            FAIL,
            "Not available for "
            f"{recipe.target.platform}/noarch: {'; '.join(unresolved)}. They must be added to "
            "the distribution's channels first.",
        )
    return CheckResult(
        "dependencies_resolve",
        title,
        PASS,
        f"All {resolved} run requirements match builds for {recipe.target.platform} or noarch.",
    )


def _package_record(record: CatalogRecord) -> PackageRecord:
    return PackageRecord(
        name=record.name,
        version=record.version,
        build=BuildString(record.build),
        build_number=record.build_number,
        subdir=record.subdir,
    )


def check_license(recipe: RenderedRecipe, form_license: str) -> CheckResult:
    title = "License"
    if not recipe.license:
        return CheckResult(
            "license", title, FAIL, "The recipe has no about: license: (an SPDX expression)."
        )
    notes = []
    if form_license and form_license.strip().lower() != recipe.license.lower():
        notes.append(f"the form says {form_license.strip()!r}, the recipe {recipe.license!r}")
    if not recipe.license_file:
        notes.append("about: license_file: is missing (conda-forge requires the license text)")
    if notes:
        return CheckResult("license", title, WARN, f"{recipe.license}; " + "; ".join(notes) + ".")
    return CheckResult("license", title, PASS, f"{recipe.license}, with its license file.")
