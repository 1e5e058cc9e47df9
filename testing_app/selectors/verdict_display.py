"""How each verdict is shown: symbol, short text and colour, so colour is never the only signal.

Shared by templates (through the `verdicts` template tags), plotly charts and SVG badges.
"""

from dataclasses import dataclass

from testing_app.models.verdicts import VERDICT_SEVERITY
from testing_app.models.verdicts import Verdict

# A cell with no CellResult at all: nothing planned or nothing reported yet, never a failure.
MISSING = "missing"


@dataclass(frozen=True)
class VerdictStyle:
    key: str
    label: str
    symbol: str
    colour: str  # strong colour: text, chart fills, badges
    background: str  # light colour: table cells


VERDICT_STYLES: dict[str, VerdictStyle] = {
    style.key: style
    for style in (
        VerdictStyle(Verdict.PASSED, "passed", "✓", "#1a7f37", "#dafbe1"),
        VerdictStyle(Verdict.FAILED, "failed", "✗", "#cf222e", "#ffebe9"),
        VerdictStyle(Verdict.UNINSTALLABLE, "uninstallable", "⊘", "#bc4c00", "#fff1e5"),
        VerdictStyle(Verdict.TIMEOUT, "timed out", "◷", "#8250df", "#fbefff"),
        VerdictStyle(Verdict.ERROR, "infra error", "⚠", "#9a6700", "#fff8c5"),
        VerdictStyle(Verdict.NO_TESTS, "no tests", "∅", "#6e7781", "#f2f4f6"),
        VerdictStyle(Verdict.RUNNING, "running", "▶", "#0969da", "#ddf4ff"),
        VerdictStyle(Verdict.QUEUED, "queued", "…", "#57606a", "#eaeef2"),
        VerdictStyle(Verdict.INSTALLABLE, "installable, not tested", "◌", "#57606a", "#eef6fb"),
        VerdictStyle(Verdict.WAIVED, "waived", "≈", "#1f6feb", "#e7f0ff"),
        VerdictStyle(Verdict.NOT_APPLICABLE, "not applicable", "–", "#8c959f", "#f6f8fa"),
        VerdictStyle(MISSING, "no result", "·", "#8c959f", "#ffffff"),
        # A job status, not a verdict: a cancelled job never produced one.
        VerdictStyle("cancelled", "cancelled", "⊗", "#6e7781", "#f6f8fa"),
    )
}

# Worst first, then "missing" (which is no verdict at all, so it never outranks a real one).
DISPLAY_ORDER: list[str] = [str(v) for v in VERDICT_SEVERITY] + [MISSING]
SEVERITY_RANK: dict[str, int] = {key: rank for rank, key in enumerate(DISPLAY_ORDER)}


def style_of(verdict: str) -> VerdictStyle:
    """The style of a verdict; an empty verdict (unfinished job) is shown as missing."""
    return VERDICT_STYLES.get(verdict or MISSING, VERDICT_STYLES[MISSING])


def worst_of(verdicts) -> str:
    """The most severe of the given verdicts (VERDICT_SEVERITY order), or MISSING if none."""
    return min(verdicts, key=lambda v: SEVERITY_RANK.get(v, len(DISPLAY_ORDER)), default=MISSING)
