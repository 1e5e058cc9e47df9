"""manage.py plan_run (--full | --release VERSION | --build ID ... | --package NAME ...)"""

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from packages_app.models import Build
from packages_app.models import TorchRelease
from testing_app.selectors.planning import latest_builds
from testing_app.services.planning import plan_full_run
from testing_app.services.planning import plan_new_builds
from testing_app.services.planning import plan_release_wave


class Command(BaseCommand):
    help = (
        "Plan a run: every active package's latest builds against every supported PyTorch "
        "release (--full), against one release (--release: the release wave), or chosen builds "
        "(--build / --package: as new builds, with their dependents re-tested unless "
        "--no-reverse-dependencies). Cells excluded by constraints become not_applicable; the "
        "others get an install check first. Cells already decided are skipped unless --force."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--full", action="store_true", help="Full distribution run")
        which.add_argument("--release", help="A registered PyTorch version (release wave)")
        which.add_argument("--build", type=int, action="append", help="Build id; repeatable")
        which.add_argument("--package", action="append", help="Latest builds of; repeatable")
        parser.add_argument("--force", action="store_true", help="Re-run decided cells too")
        parser.add_argument(
            "--no-reverse-dependencies",
            action="store_true",
            help="With --build/--package: do not re-test the dependents",
        )
        parser.add_argument(
            "--depth",
            type=int,
            help="Reverse-dependency depth (default: PLAN_REVDEP_DEPTH / PLAN_ABI_REVDEP_DEPTH)",
        )

    def handle(self, *args, **options):
        force = options["force"]
        if options["full"]:
            report = plan_full_run(force=force, detail="manage.py plan_run --full")
        elif options["release"]:
            release = TorchRelease.objects.filter(version=options["release"]).first()
            if release is None:
                raise CommandError(f"PyTorch {options['release']} is not registered.")
            report = plan_release_wave(release=release, force=force)
        else:
            builds = self._builds(options["build"], options["package"])
            report = plan_new_builds(
                builds=builds,
                detail="manage.py plan_run",
                force=force,
                reverse_dependencies=not options["no_reverse_dependencies"],
                revdep_depth=options["depth"],
                trigger="manual",
            )
        self.stdout.write(report.summary())
        for build_id, reason in report.unplannable:
            self.stderr.write(f"build {build_id} not planned: {reason}")

    @staticmethod
    def _builds(ids, names) -> list[Build]:
        if ids:
            builds = list(Build.objects.filter(pk__in=ids))
            missing = sorted(set(ids) - {b.pk for b in builds})
            if missing:
                raise CommandError(f"No build with id {missing}.")
            return builds
        latest = latest_builds(names=names)
        missing = sorted(set(names) - set(latest))
        if missing:
            raise CommandError(f"No active package with live builds named {missing}.")
        return list(Build.objects.filter(pk__in=[r.id for rs in latest.values() for r in rs]))
