"""What a package's badge says: the worst verdict of its latest version's cells."""

from dataclasses import dataclass

from django.urls import reverse

from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.selectors.matrix import MatrixFilters
from testing_app.selectors.matrix import aggregate_cells
from testing_app.selectors.matrix import list_supported_releases
from testing_app.selectors.matrix import summarise_counts
from testing_app.selectors.verdict_display import MISSING
from testing_app.selectors.verdict_display import style_of


@dataclass(frozen=True)
class BadgeStatus:
    label: str
    message: str
    colour: str
    found: bool = True


# The words a badge uses; "passing" is what README readers look for.
BADGE_WORDS = {
    "passed": "passing",
    "failed": "failing",
    "uninstallable": "uninstallable",
    "timeout": "timeout",
    "error": "infra error",
    "no_tests": "no tests",
    "running": "testing",
    "queued": "queued",
    "waived": "passing (waived)",
    "not_applicable": "not applicable",
    MISSING: "untested",
}


def get_badge_status(*, name: str, torch_version: str = "") -> BadgeStatus:
    """The badge of `name` over all supported releases, or one release (`found` is False and
    the message says which when the package or the release is unknown)."""
    label = f"pytorch {torch_version}" if torch_version else "pytorch"
    unknown = style_of(MISSING).colour
    package = Package.objects.filter(name=name).only("pk", "name", "latest_version").first()
    if package is None:
        return BadgeStatus(label=label, message="unknown package", colour=unknown, found=False)
    if torch_version:
        release = TorchRelease.objects.filter(version=torch_version).first()
        if release is None:
            return BadgeStatus(label=label, message="unknown release", colour=unknown, found=False)
        releases = [release]
    else:
        releases = list_supported_releases()
    cells = aggregate_cells([package.pk], releases, MatrixFilters())
    counts: dict[str, int] = {}
    for cell in cells.values():
        for verdict, n in cell.counts:
            counts[verdict] = counts.get(verdict, 0) + n
    worst = summarise_counts(counts).worst
    return BadgeStatus(label=label, message=BADGE_WORDS[worst], colour=style_of(worst).colour)


@dataclass(frozen=True)
class BadgeSnippet:
    """A badge as a maintainer pastes it into a README: its title and its Markdown."""

    title: str
    image_path: str
    markdown: str


def list_badge_snippets(
    *, name: str, site_url: str, supported_releases: list[TorchRelease] | None = None
) -> list[BadgeSnippet]:
    """The package's badge, then one per supported PyTorch release, as absolute-URL Markdown.
    `supported_releases` (newest first) saves the page that already read them a query."""
    package_path = reverse("packages:package-detail", kwargs={"name": name})
    snippets = []
    paths = [("All supported PyTorch releases", reverse("testing:badge-package", args=[name]))]
    if supported_releases is None:
        supported_releases = list_supported_releases()
    for release in supported_releases:
        path = reverse("testing:badge-package-release", args=[name, release.version])
        paths.append((f"PyTorch {release.version}", path))
    for title, path in paths:
        alt = f"{name} on conda-distro" + ("" if path.endswith(f"/{name}.svg") else f" ({title})")
        markdown = f"[![{alt}]({site_url}{path})]({site_url}{package_path})"
        snippets.append(BadgeSnippet(title=title, image_path=path, markdown=markdown))
    return snippets
