"""One matrix cell explained: package x PyTorch release x variant x platform.

For each build and Python of the package in that cell: the verdict, why (the planner's
not-applicable reason, the solver's explanation, the failure excerpt or the infrastructure
error), the inputs (build, the PyTorch build the solver picked, variant, platform, Python, the
pinned upstream build of a reverse-dependency re-test) and the history, tests apart from install
checks. Six queries whatever the history's length.
"""

from dataclasses import dataclass
from dataclasses import field

from django.db.models import F
from django.db.models import Window
from django.db.models.functions import RowNumber
from django.http import Http404
from rattler import Version

from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models.verdicts import Verdict
from testing_app.selectors.logs import extract_failure_excerpt

HISTORY_LENGTH = 10
# The packages of a solved environment that are PyTorch itself, whatever the channel calls it.
TORCH_PACKAGE_NAMES = ("pytorch", "torch", "libtorch")


@dataclass(frozen=True)
class CellExplanation:
    result: CellResult
    is_latest_version: bool
    reason_title: str
    reason: str
    torch_build: str
    tests: list[Job] = field(default_factory=list)
    install_checks: list[Job] = field(default_factory=list)


@dataclass
class CellPage:
    package: Package
    release: TorchRelease
    variant: Variant
    platform: Platform
    explanations: list[CellExplanation]


def _reason(result: CellResult) -> tuple[str, str]:
    """(heading, text) of why the cell has its verdict, from what was stored with it."""
    job = result.latest_job
    if result.verdict == Verdict.NOT_APPLICABLE:
        return "Why not applicable", result.detail or "The planner recorded no reason."
    if job is None:
        return "Why", result.detail or "No job has run for this cell yet."
    if result.verdict == Verdict.UNINSTALLABLE:
        return "Why it cannot be installed (the solver's explanation)", (
            job.failure_excerpt or job.error_message or "The solver gave no explanation."
        )
    if result.verdict in (Verdict.FAILED, Verdict.TIMEOUT, Verdict.NO_TESTS):
        return "Why it did not pass", (
            job.failure_excerpt or job.error_message or extract_failure_excerpt(job.log_tail)
        )
    if result.verdict == Verdict.ERROR:
        return "Infrastructure error (not the package's fault)", job.error_message
    if result.verdict == Verdict.INSTALLABLE:
        return "Installable, not tested", (
            f"The install check solved the test environment ({len(job.solved_packages or [])} "
            "packages); no test ran: the package file is not on this machine."
        )
    if result.verdict == Verdict.WAIVED:
        return "Waived", result.detail
    return "", result.detail


def _torch_build(job: Job | None) -> str:
    """The PyTorch package the solver put in the job's environment, as name-version-build."""
    if job is None:
        return ""
    for package in job.solved_packages or ():
        if isinstance(package, dict) and package.get("name") in TORCH_PACKAGE_NAMES:
            # A solve records name, version and build; a test run the package's file stem.
            if package.get("version"):
                return "-".join(str(package.get(k, "")) for k in ("name", "version", "build"))
            return str(package.get("filename") or package.get("package") or package["name"])
    return ""


def _history(results: list[CellResult], release, variant, platform) -> dict[tuple, list[Job]]:
    """The last HISTORY_LENGTH jobs of each kind per (build, python), newest first (1 query)."""
    ranked = (
        Job.objects.filter(
            build_id__in=[r.build_id for r in results],
            torch_release=release,
            variant=variant,
            platform=platform,
        )
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("build_id"), F("python"), F("kind")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=HISTORY_LENGTH)
        .select_related("host", "pinned_build")
        .order_by("-created_at", "-id")
    )
    grouped: dict[tuple, list[Job]] = {}
    for job in ranked:
        grouped.setdefault((job.build_id, job.python, job.kind), []).append(job)
    return grouped


def get_cell_page(*, package: str, release: str, variant: str, platform: str) -> CellPage:
    """The cell page's content; Http404 for an unknown package, release, variant or platform."""
    try:
        package_row = Package.objects.get(name=package)
        release_row = TorchRelease.objects.get(version=release)
        variant_row = Variant.objects.get(name=variant)
        platform_row = Platform.objects.get(subdir=platform)
    except (
        Package.DoesNotExist,
        TorchRelease.DoesNotExist,
        Variant.DoesNotExist,
        Platform.DoesNotExist,
    ) as exc:
        raise Http404(str(exc)) from exc
    results = list(
        CellResult.objects.filter(
            package=package_row,
            torch_release=release_row,
            variant=variant_row,
            platform=platform_row,
        ).select_related("build", "latest_job", "latest_job__pinned_build")
    )
    results.sort(key=lambda r: (Version(r.build.version), r.build.filename, r.python), reverse=True)
    history = _history(results, release_row, variant_row, platform_row) if results else {}
    explanations = []
    for result in results:
        title, text = _reason(result)
        key = (result.build_id, result.python)
        checks = history.get((*key, Job.Kind.INSTALL_CHECK), [])
        # A test job keeps its own environment; else the install check's solve says it.
        torch_build = _torch_build(result.latest_job) or _torch_build(next(iter(checks), None))
        explanations.append(
            CellExplanation(
                result=result,
                is_latest_version=result.build.version == package_row.latest_version,
                reason_title=title,
                reason=text,
                torch_build=torch_build,
                tests=history.get((*key, Job.Kind.TEST), []),
                install_checks=checks,
            )
        )
    return CellPage(
        package=package_row,
        release=release_row,
        variant=variant_row,
        platform=platform_row,
        explanations=explanations,
    )
