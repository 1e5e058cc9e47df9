"""Reads for the upper-bound lint: a package page's lint section and a channel's lint report."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from packages_app.lint.rules import CODES
from packages_app.lint.rules import ERROR
from packages_app.lint.rules import LintFinding
from packages_app.lint.rules import lint_build
from packages_app.models import Build


@dataclass
class CodeSummary:
    """One lint code over many builds: how many builds it hit, in which packages, examples."""

    code: str
    severity: str
    title: str
    builds: int = 0
    packages: Counter = field(default_factory=Counter)
    examples: list[tuple[Build, LintFinding]] = field(default_factory=list)


@dataclass
class LintSummary:
    builds: int = 0
    clean: int = 0
    with_errors: int = 0
    codes: list[CodeSummary] = field(default_factory=list)

    @property
    def hit_codes(self) -> list[CodeSummary]:
        return [c for c in self.codes if c.builds]


def summarize_lint(builds: Iterable[Build], *, examples: int = 3) -> LintSummary:
    """Lint every build (select_related("package") them) and count findings per code."""
    return summarize_findings(((b, lint_build(b)) for b in builds), examples=examples)


def summarize_findings(
    linted: Iterable[tuple[Build, list[LintFinding]]], *, examples: int = 3
) -> LintSummary:
    summary = LintSummary()
    by_code = {code: CodeSummary(code, sev, title) for code, (sev, title) in CODES.items()}
    for build, findings in linted:
        summary.builds += 1
        if not findings:
            summary.clean += 1
        if any(f.severity == ERROR for f in findings):
            summary.with_errors += 1
        for code in dict.fromkeys(f.code for f in findings):
            entry = by_code[code]
            entry.builds += 1
            entry.packages[build.name] += 1
            shown = {b.name for b, _ in entry.examples}
            # Examples from different packages first: the report is read as spot checks.
            if len(entry.examples) < examples and build.name not in shown:
                entry.examples.append((build, next(f for f in findings if f.code == code)))
    summary.codes = list(by_code.values())
    return summary


@dataclass
class BuildLint:
    build: Build
    findings: list[LintFinding]


@dataclass
class PackageLint:
    """The lint of a package's latest version, for its page (and the gate's explanation)."""

    version: str
    builds: list[BuildLint]
    summary: LintSummary

    @property
    def errors(self) -> int:
        return sum(1 for b in self.builds for f in b.findings if f.severity == ERROR)

    @property
    def flagged(self) -> list[BuildLint]:
        return [b for b in self.builds if b.findings]


def get_package_lint(*, name: str, version: str) -> PackageLint | None:
    """Findings for every live build of one version of a package (one query)."""
    if not version:
        return None
    builds = list(
        Build.objects.filter(name=name, version=version)
        .exclude(state=Build.State.WITHDRAWN)
        .select_related("package")
        .order_by("subdir", "filename")
    )
    linted = [BuildLint(build=b, findings=lint_build(b)) for b in builds]
    summary = summarize_findings((b.build, b.findings) for b in linted)
    return PackageLint(version=version, builds=linted, summary=summary)
