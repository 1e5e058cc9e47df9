"""The verdicts a cell can show (DESIGN.md section 4) and how they group."""

from django.db import models


class Verdict(models.TextChoices):
    """What a cell says. `queued`/`running` are in flight and never shown as failures."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    UNINSTALLABLE = "uninstallable", "Uninstallable"
    NO_TESTS = "no_tests", "No tests"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    ERROR = "error", "Infrastructure error"
    TIMEOUT = "timeout", "Timed out"
    WAIVED = "waived", "Waived"


IN_FLIGHT_VERDICTS = frozenset({Verdict.QUEUED, Verdict.RUNNING})
# Verdicts a finished job can end with (a job is never "waived": waivers apply to cells).
JOB_FINAL_VERDICTS = frozenset(
    {
        Verdict.PASSED,
        Verdict.FAILED,
        Verdict.UNINSTALLABLE,
        Verdict.NO_TESTS,
        Verdict.NOT_APPLICABLE,
        Verdict.ERROR,
        Verdict.TIMEOUT,
    }
)
# Retried automatically: infrastructure trouble, never the package's own failure.
AUTO_RETRY_VERDICTS = frozenset({Verdict.ERROR, Verdict.TIMEOUT})
# Worst first: used to aggregate variants x platforms into one matrix cell.
VERDICT_SEVERITY = [
    Verdict.FAILED,
    Verdict.UNINSTALLABLE,
    Verdict.TIMEOUT,
    Verdict.ERROR,
    Verdict.NO_TESTS,
    Verdict.RUNNING,
    Verdict.QUEUED,
    Verdict.WAIVED,
    Verdict.PASSED,
    Verdict.NOT_APPLICABLE,
]
