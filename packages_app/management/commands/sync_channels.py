"""manage.py sync_channels [--channel NAME ...] [--no-plan]"""

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from packages_app.models import Channel
from packages_app.services.sync import sync_channels


class Command(BaseCommand):
    help = (
        "Read each configured channel's repodata.json (conditional GET; file:// by size and "
        "mtime), import new and changed builds, mark vanished files withdrawn, and plan the "
        "new builds of registered packages in staging channels. Exit status 1 when a channel "
        "could not be read (its error is kept on the channel, its data as it was)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--channel",
            action="append",
            dest="names",
            help="Sync only this channel (name, or name/label/LABEL); repeatable",
        )
        parser.add_argument("--no-plan", action="store_true", help="Import only; start no test run")

    def handle(self, *args, names, no_plan, **options):
        channels = None
        if names:
            channels = [self._channel(name) for name in names]
        results = sync_channels(channels=channels, plan=not no_plan)
        failed = []
        for result in results:
            for subdir in result.subdirs:
                if subdir.status != "missing":
                    self.stdout.write(f"{result.channel} {subdir.line()}")
            failed += [f"{result.channel} {error}" for error in result.errors]
        if failed:
            raise CommandError("Some channels could not be read:\n" + "\n".join(failed))

    @staticmethod
    def _channel(text: str) -> Channel:
        name, _, label = text.partition("/label/")
        channel = Channel.objects.filter(name=name, label=label).first()
        if channel is None:
            known = ", ".join(str(c) for c in Channel.objects.all()) or "none"
            raise CommandError(f"Unknown channel {text!r}. Configured channels: {known}")
        return channel
