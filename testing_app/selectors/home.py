"""What the home page shows of the testing side: the latest runs, the latest problems and the
latest promotions, each a link, with the totals they come from. Six queries whatever the size."""

from dataclasses import dataclass

from testing_app.models import CellResult
from testing_app.models import Promotion
from testing_app.models import Run
from testing_app.selectors.matrix import PROBLEM_VERDICTS

SHOWN = 5


@dataclass
class RecentActivity:
    runs: list[Run]
    run_count: int
    problems: list[CellResult]
    problem_count: int
    promotions: list[Promotion]
    promotion_count: int


def get_recent_activity(shown: int = SHOWN) -> RecentActivity:
    """The newest runs, failing cells (failed, uninstallable, timed out, infra error) and
    promotions, `shown` of each."""
    problems = CellResult.objects.filter(verdict__in=PROBLEM_VERDICTS, package__isnull=False)
    return RecentActivity(
        runs=list(Run.objects.order_by("-created_at", "-id")[:shown]),
        run_count=Run.objects.count(),
        problems=list(
            problems.select_related(
                "package", "build", "torch_release", "variant", "platform"
            ).order_by("-updated_at", "-id")[:shown]
        ),
        problem_count=problems.count(),
        promotions=list(
            Promotion.objects.select_related("target_channel").order_by("-created_at", "-id")[
                :shown
            ]
        ),
        promotion_count=Promotion.objects.count(),
    )
