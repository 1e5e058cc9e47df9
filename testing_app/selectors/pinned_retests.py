"""Re-tests with an upstream build pinned, as the pages show them: on the dependent's page
("with sample-lib 2.0 (staged)") and on the upstream build's excuses (which dependents it was
re-tested with). They are read from PinnedCellResult only, so they never mix with the
dependent's own cells."""

from collections import defaultdict
from dataclasses import dataclass

from distro_site.url_templates import job_url
from testing_app.models import PinnedCellResult
from testing_app.models.verdicts import VERDICT_SEVERITY
from testing_app.models.verdicts import Verdict

SEVERITY = {verdict: rank for rank, verdict in enumerate(VERDICT_SEVERITY)}
RETEST_FIELDS = (
    "build_id",
    "build__name",
    "build__version",
    "pinned_build_id",
    "pinned_build__name",
    "pinned_build__version",
    "pinned_build__state",
    "torch_release__version",
    "variant__name",
    "platform__subdir",
    "python",
    "verdict",
    "latest_job_id",
)


@dataclass(frozen=True)
class RetestCell:
    label: str  # "PyTorch 2.6.0 × cpu × linux-64 × py3.12"
    verdict: str
    url: str

    @property
    def verdict_label(self) -> str:
        return Verdict(self.verdict).label


@dataclass(frozen=True)
class RetestGroup:
    """One dependent build re-tested with one pinned upstream build."""

    dependent: str  # "dep-a 1.0"
    dependent_build_id: int
    pinned: str  # "with sample-lib 2.0 (staged)"
    pinned_build_id: int
    cells: tuple[RetestCell, ...]

    @property
    def worst(self) -> str:
        return min((c.verdict for c in self.cells), key=lambda v: SEVERITY.get(v, 99))


def _groups(rows) -> list[RetestGroup]:
    grouped: dict[tuple, list] = defaultdict(list)
    heads = {}
    for row in rows:
        (build_id, name, version, pinned_id, pinned_name, pinned_version, pinned_state,
         release, variant, subdir, python, verdict, job_id) = row  # fmt: skip
        key = (build_id, pinned_id)
        heads[key] = (f"{name} {version}", f"with {pinned_name} {pinned_version} ({pinned_state})")
        python_part = f" × py{python}" if python else ""
        grouped[key].append(
            RetestCell(
                f"PyTorch {release} × {variant} × {subdir}{python_part}", verdict, job_url(job_id)
            )
        )
    return [
        RetestGroup(heads[key][0], key[0], heads[key][1], key[1], tuple(sorted(cells, key=str)))
        for key, cells in sorted(grouped.items(), key=lambda item: heads[item[0]])
    ]


def retests_of_dependent(*, name: str) -> list[RetestGroup]:
    """The package's builds re-tested with upstream builds pinned (one query)."""
    rows = PinnedCellResult.objects.filter(build__name=name).values_list(*RETEST_FIELDS)
    return _groups(rows)


def retests_with_upstream(*, build_ids) -> list[RetestGroup]:
    """The dependents re-tested with these upstream builds pinned (one query)."""
    rows = PinnedCellResult.objects.filter(pinned_build_id__in=list(build_ids)).values_list(
        *RETEST_FIELDS
    )
    return _groups(rows)
