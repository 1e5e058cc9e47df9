"""Re-tests with an upstream build pinned, kept apart from the dependent's own cells.

A re-test of `dep-a` with a staged `sample-lib 2.0` pinned says how `dep-a` fares with that
upstream build, not how `dep-a` itself is doing: the upstream build may never be promoted. Its
latest verdict per (cell, pinned build) lives here, so `CellResult` (the dependent's own matrix,
badge, gate and notices) only ever holds results of the dependent against the channels as they
are. The upstream build's gate reads these re-tests; the dependent's page lists them as "with
sample-lib 2.0 (staged)".
"""

from django.db import models
from django.db.models import Q

from .reference import Platform
from .reference import Variant
from .runs import Job
from .verdicts import Verdict


class PinnedCellResult(models.Model):
    """The latest verdict of one dependent cell re-tested with one pinned upstream build."""

    build = models.ForeignKey(
        "packages_app.Build", on_delete=models.CASCADE, related_name="pinned_cell_results"
    )
    package = models.ForeignKey(
        "packages_app.Package",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="pinned_cell_results",
    )
    # The upstream build the re-test pinned: part of the cell's identity.
    pinned_build = models.ForeignKey(
        "packages_app.Build", on_delete=models.CASCADE, related_name="pinned_retests"
    )
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease", on_delete=models.CASCADE, related_name="+"
    )
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="+")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="+")
    python = models.CharField(max_length=8, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.QUEUED)
    previous_verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    latest_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["build", "pinned_build", "torch_release", "variant", "platform", "python"],
                name="pinnedcellresult_unique_cell",
            ),
            models.CheckConstraint(
                condition=Q(verdict__in=Verdict.values), name="pinnedcellresult_verdict_valid"
            ),
        ]
        indexes = [models.Index(fields=["pinned_build", "verdict"])]

    def __str__(self) -> str:
        return (
            f"{self.build_id} with {self.pinned_build_id} x {self.torch_release_id} x "
            f"{self.variant_id} x {self.platform_id}: {self.verdict}"
        )
