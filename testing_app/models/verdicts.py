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
    # The install check solved the cell's environment, and no test ran: this machine has no
    # package file to test (TESTS_NEED_PACKAGE_FILE, the demo). Neutral: neither good nor bad.
    INSTALLABLE = "installable", "Installable, not tested"


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
        Verdict.INSTALLABLE,
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
    Verdict.INSTALLABLE,
    Verdict.WAIVED,
    Verdict.PASSED,
    Verdict.NOT_APPLICABLE,
]
