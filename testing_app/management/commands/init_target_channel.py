"""manage.py init_target_channel: a local directory as the target channel (local backend)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from packages_app.models import Channel
from testing_app.adapters.local_channel import ensure_channel


class Command(BaseCommand):
    help = (
        "Register TARGET_CHANNEL_DIR (or --dir) as the target channel, as a file:// URL, and make "
        "it a valid empty conda channel. Idempotent; refuses when another target exists."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir", dest="directory", type=Path, default=None, help="Default: TARGET_CHANNEL_DIR"
        )
        parser.add_argument("--name", default="target", help="Channel name (default: target)")

    def handle(self, *args, directory=None, name="target", **options):
        root = (directory or settings.TARGET_CHANNEL_DIR).resolve()
        url = root.as_uri()
        existing = Channel.objects.filter(role=Channel.Role.TARGET).first()
        if existing is not None and existing.url.rstrip("/") != url:
            raise CommandError(
                f"The target channel is already {existing} ({existing.url}); change it in the "
                "admin first if you really mean to switch."
            )
        # Runs rattler's indexer: fine here, this process never forks workers afterwards.
        ensure_channel(root)
        if existing is None:
            existing = Channel.objects.create(name=name, url=url, role=Channel.Role.TARGET)
            self.stdout.write(f"Registered target channel {existing} at {url}")
        else:
            self.stdout.write(f"Target channel {existing} at {url} is ready")
