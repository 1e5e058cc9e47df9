"""The promotion gate's vocabulary: statuses, policies, and what a policy result carries."""

from dataclasses import dataclass

PASS = "pass"
WAITING = "waiting"
FAIL = "fail"
WAIVED = "waived"

# Overall gate outcome of a build or a coordinated set.
PROMOTABLE = "promotable"
BLOCKED = "blocked"

POLICY_PACKAGE = "package"
POLICY_CELLS = "cells"
POLICY_REVERSE_DEPENDENCIES = "reverse_dependencies"
POLICY_INSTALLABILITY = "installability"
POLICY_TESTS = "tests"
POLICY_LINT = "lint"
POLICY_LICENSE = "license"
POLICY_NOT_PROMOTED = "not_promoted"

# In the order the excuses page lists them (DESIGN.md section 6).
POLICY_TITLES = {
    POLICY_PACKAGE: "Package active with a maintainer",
    POLICY_CELLS: "Required cells passed",
    POLICY_REVERSE_DEPENDENCIES: "Reverse dependencies did not regress",
    POLICY_INSTALLABILITY: "Installable from the target channel",
    POLICY_TESTS: "Tests exist",
    POLICY_LINT: "Upper bound on PyTorch (lint)",
    POLICY_LICENSE: "License allows redistribution",
    POLICY_NOT_PROMOTED: "Not already promoted",
}
# A release manager may accept these when they fail. The others are facts no one can waive:
# a package needs a maintainer, a licence that forbids copying forbids it, and a build is
# promoted at most once.
WAIVABLE_POLICIES = (
    POLICY_CELLS,
    POLICY_REVERSE_DEPENDENCIES,
    POLICY_INSTALLABILITY,
    POLICY_TESTS,
    POLICY_LINT,
)


@dataclass(frozen=True)
class Evidence:
    label: str
    url: str


@dataclass(frozen=True)
class GateLine:
    """One row of a policy's details: a cell, a re-test, a check, a lint finding."""

    status: str
    text: str
    verdict: str = ""  # shown as a verdict chip when set (cells and re-tests)
    url: str = ""
    note: str = ""
    # For a failing cell a release manager may waive: torch_release/variant/platform ids.
    waive_cell: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    status: str
    reason: str
    lines: tuple[GateLine, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    # The waiver that turned a failing or waiting policy into `waived` (or that is on record).
    waiver_id: int | None = None

    @property
    def title(self) -> str:
        return POLICY_TITLES[self.policy]

    @property
    def waivable(self) -> bool:
        return self.policy in WAIVABLE_POLICIES

    @property
    def has_waived_lines(self) -> bool:
        return any(line.status == WAIVED for line in self.lines)

    @property
    def one_line(self) -> str:
        return f"{self.title}: {self.reason}"


def plural(count: int, singular: str, plural_form: str = "") -> str:
    """Counts in reasons read as English: "1 cell", "2 cells"."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def overall_status(results) -> str:
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return BLOCKED
    if WAITING in statuses:
        return WAITING
    return PROMOTABLE


def summary_line(status: str, results) -> str:
    """The blocking (or waiting) reason on one line, as the queue shows it."""
    if status == PROMOTABLE:
        # Waived is never silently green: count waived policies and waived cells.
        waived = sum(1 for r in results if r.status == WAIVED) + sum(
            1 for r in results if r.status == PASS for line in r.lines if line.status == WAIVED
        )
        return "Every policy passes" + (f" ({waived} waived)" if waived else "")
    wanted = FAIL if status == BLOCKED else WAITING
    matching = [r for r in results if r.status == wanted]
    more = f" (+{len(matching) - 1} more)" if len(matching) > 1 else ""
    return matching[0].one_line + more
