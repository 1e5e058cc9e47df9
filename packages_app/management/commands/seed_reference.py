"""manage.py seed_reference: variants, platforms and PyTorch releases from the reference CSVs."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from packages_app.services.reference import seed_reference


class Command(BaseCommand):
    help = (
        "Load Variant, Platform and TorchRelease rows from the reference CSVs (derived from "
        "real PyTorch release data, see packages_app/demo_data/PROVENANCE.md) and the channels "
        "configured in DISTRO_CHANNELS. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reference-dir",
            type=Path,
            default=settings.DEMO_DATA_DIR / "reference",
            help="Folder holding variants.csv and torch_releases.csv",
        )

    def handle(self, *args, reference_dir, **options):
        report = seed_reference(reference_dir=reference_dir, channels=settings.DISTRO_CHANNELS)
        self.stdout.write(
            f"{report.variants} variants, {report.platforms} platforms, "
            f"{report.torch_releases} PyTorch releases, {report.channels} channels"
        )
