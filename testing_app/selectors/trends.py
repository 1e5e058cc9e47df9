"""Trends for the plots: pass rate over time, job durations per variant, a release wave.

Each function is one grouped query over an indexed range (finished_at, torch_release) or over
the daily job counts, and returns plain data; views/charts.py turns it into figures.
"""

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta

from django.db.models import Count
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import JobDayCount
from testing_app.models.verdicts import Verdict
from testing_app.selectors.verdict_display import DISPLAY_ORDER
from testing_app.selectors.verdict_display import worst_of

TREND_DAYS = 30
DURATION_SAMPLE = 5000
# A pass rate counts what ran: not_applicable cells were never run and waivers are decisions.
RAN_VERDICTS = frozenset(
    {
        Verdict.PASSED,
        Verdict.FAILED,
        Verdict.UNINSTALLABLE,
        Verdict.NO_TESTS,
        Verdict.ERROR,
        Verdict.TIMEOUT,
    }
)


@dataclass(frozen=True)
class DailyVerdicts:
    day: date
    counts: dict[str, int]

    @property
    def ran(self) -> int:
        return sum(n for v, n in self.counts.items() if v in RAN_VERDICTS)

    @property
    def pass_rate(self) -> float | None:
        return round(100.0 * self.counts.get(Verdict.PASSED, 0) / self.ran, 1) if self.ran else None


def get_daily_verdicts(*, package_name: str = "", days: int = TREND_DAYS) -> list[DailyVerdicts]:
    """Finished test jobs per UTC day and verdict over the last `days` days, today included.

    All packages: the daily counts (JobDayCount, ~10 rows a day). One package: its own jobs,
    a few hundred rows found through the build index.
    """
    first_day = timezone.now().date() - timedelta(days=days - 1)
    if package_name:
        rows = (
            Job.objects.filter(
                finished_at__gte=datetime.combine(first_day, time.min, tzinfo=UTC),
                kind=Job.Kind.TEST,
                build__name=package_name,
            )
            .annotate(day=TruncDate("finished_at"))
            .order_by()
            .values_list("day", "verdict")
            .annotate(n=Count("pk"))
        )
    else:
        rows = (
            JobDayCount.objects.filter(day__gte=first_day, kind=Job.Kind.TEST)
            .order_by()
            .values_list("day", "verdict")
            .annotate(n=Sum("jobs"))
        )
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for day, verdict, n in rows:
        by_day[day][verdict] = n
    return [DailyVerdicts(day=d, counts=by_day[d]) for d in sorted(by_day)]


def get_durations_by_variant(
    *, package_name: str = "", sample: int = DURATION_SAMPLE
) -> dict[str, list[float]]:
    """Durations (s) of the latest `sample` finished test jobs, grouped by variant name."""
    jobs = Job.objects.filter(
        status=Job.Status.FINISHED, kind=Job.Kind.TEST, duration_s__isnull=False
    )
    if package_name:
        jobs = jobs.filter(build__name=package_name)
    rows = jobs.order_by("-finished_at").values_list("variant__name", "duration_s")[:sample]
    durations: dict[str, list[float]] = defaultdict(list)
    for variant, seconds in rows:
        durations[variant].append(seconds)
    return dict(sorted(durations.items()))


@dataclass
class ReleaseWave:
    """How far the packages are with one PyTorch release."""

    release: TorchRelease
    cell_counts: dict[str, int] = field(default_factory=dict)
    package_worst: dict[str, int] = field(default_factory=dict)
    # (day, verdict) -> cells whose current verdict was reached that day
    cells_by_day: list[tuple[date, dict[str, int]]] = field(default_factory=list)

    @property
    def cells(self) -> int:
        return sum(self.cell_counts.values())

    @property
    def packages(self) -> int:
        return sum(self.package_worst.values())


def get_release_wave(release: TorchRelease) -> ReleaseWave:
    """Cells and packages of one release by verdict, and the day cells got it (2 queries)."""
    cells = CellResult.objects.filter(torch_release=release).order_by()
    wave = ReleaseWave(release=release)
    per_package: dict[int | None, list[str]] = defaultdict(list)
    for package_id, verdict, n in cells.values_list("package_id", "verdict").annotate(
        n=Count("pk")
    ):
        wave.cell_counts[verdict] = wave.cell_counts.get(verdict, 0) + n
        per_package[package_id].append(verdict)
    for verdicts in per_package.values():
        worst = worst_of(verdicts)
        wave.package_worst[worst] = wave.package_worst.get(worst, 0) + 1
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    rows = (
        cells.annotate(day=TruncDate("updated_at"))
        .values_list("day", "verdict")
        .annotate(n=Count("pk"))
    )
    for day, verdict, n in rows:
        by_day[day][verdict] = n
    wave.cells_by_day = sorted(by_day.items())
    wave.cell_counts = _in_severity_order(wave.cell_counts)
    wave.package_worst = _in_severity_order(wave.package_worst)
    return wave


def _in_severity_order(counts: dict[str, int]) -> dict[str, int]:
    return {key: counts[key] for key in DISPLAY_ORDER if key in counts}
