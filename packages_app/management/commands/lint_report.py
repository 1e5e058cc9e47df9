"""manage.py lint_report --channel NAME: the upper-bound lint over a channel's builds."""

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.selectors.lint_report import summarize_lint


class Command(BaseCommand):
    help = "Run the upper-bound lint over a channel's live builds; print counts per code."

    def add_arguments(self, parser):
        parser.add_argument("--channel", required=True, help="Channel name, e.g. pytorch-snapshot")
        parser.add_argument("--label", default="", help="Channel label (default: none)")
        parser.add_argument("--subdir", default="", help="Only this subdir (e.g. linux-64)")
        parser.add_argument("--package", default="", help="Only builds of this name")
        parser.add_argument(
            "--registered-only",
            action="store_true",
            help="Only builds of packages registered in the distribution",
        )
        parser.add_argument("--examples", type=int, default=3, help="Examples per code")
        parser.add_argument("--top", type=int, default=8, help="Packages listed per code")

    def handle(self, *args, **options):
        channel = Channel.objects.filter(name=options["channel"], label=options["label"]).first()
        if channel is None:
            known = ", ".join(str(c) for c in Channel.objects.all()) or "none"
            raise CommandError(f"No channel {options['channel']!r} (known: {known}).")
        builds = (
            Build.objects.filter(channel=channel)
            .exclude(state=Build.State.WITHDRAWN)
            .select_related("package")
            .order_by("name", "version", "filename")
        )
        if options["subdir"]:
            builds = builds.filter(subdir=options["subdir"])
        if options["package"]:
            builds = builds.filter(name=options["package"])
        if options["registered_only"]:
            builds = builds.filter(package__isnull=False)
        summary = summarize_lint(builds.iterator(chunk_size=2000), examples=options["examples"])
        write = self.stdout.write
        write(
            f"{channel}: {summary.builds} builds linted, {summary.clean} clean, "
            f"{summary.with_errors} with errors"
        )
        for entry in summary.codes:
            write(
                f"\n{entry.code} ({entry.severity}): {entry.builds} builds in "
                f"{len(entry.packages)} packages: {entry.title}"
            )
            for name, count in entry.packages.most_common(options["top"]):
                write(f"    {name}: {count}")
            for build, finding in entry.examples:
                write(f"  e.g. {build.subdir}/{build.filename}: {finding.message}")
