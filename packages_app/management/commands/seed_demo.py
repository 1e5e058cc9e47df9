"""manage.py seed_demo: reference rows, the real demo channels and the ecosystem packages, and
the sample channel whose staged builds the demo's worker installs and tests (issue 5)."""

import platform
import time
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.db import transaction

from packages_app.adapters.sample_channel import SampleChannelError
from packages_app.adapters.sample_channel import build_sample_channel
from packages_app.models import Channel
from packages_app.services.catalog import import_repodata
from packages_app.services.packages import register_package
from packages_app.services.reviews import upsert_maintainers
from packages_app.services.sync import register_channel
from packages_app.services.sync import sync_channels
from testing_app.adapters.host_probe import conda_subdir

SAMPLE_CHANNEL = "samples"
# The sample packages' maintainer, so that they can pass the gate's "active with a maintainer"
# policy and be promoted in the demo; run_demo gives its admin user this address, which makes
# the admin their maintainer too (accounts match maintainers by e-mail).
DEMO_MAINTAINER_NAME = "Demo maintainer"
DEMO_MAINTAINER_EMAIL = "maintainer@demo.invalid"

# PyTorch-ecosystem packages present in the demo channels. ABI-coupled ones pin one exact
# PyTorch in their repodata (torchvision-0.16.0 depends on "pytorch 2.1.0").
DEMO_PACKAGES = {
    "pytorch": ("Tensors and dynamic neural networks in Python", False),
    "torchvision": ("Datasets, transforms and models for computer vision", True),
    "torchaudio": ("Audio and signal processing for PyTorch", True),
    "torchtext": ("Text utilities and datasets for PyTorch", True),
    "torchdata": ("Composable data loading for PyTorch", False),
    "torchcsprng": ("Cryptographically secure random number generators for PyTorch", True),
    "ignite": ("High-level library to train and evaluate neural networks in PyTorch", False),
    "torchserve": ("Serve PyTorch models", False),
    "torch-model-archiver": ("Package models for TorchServe", False),
    "faiss-gpu": ("Similarity search and clustering of dense vectors (GPU)", False),
    "faiss-cpu": ("Similarity search and clustering of dense vectors (CPU)", False),
}


class Command(BaseCommand):
    help = (
        "Seed the demo: reference rows, every subdir of the demo channels, demo packages, and "
        "the sample channel (built into VAR_DIR/channels/samples, registered as the staging "
        "channel, synced: its new builds are planned). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-samples", action="store_true", help="Skip the sample channel (catalog only)"
        )

    def handle(self, *args, no_samples=False, **options):
        call_command("seed_reference", stdout=self.stdout)
        for channel in Channel.objects.filter(url__startswith="file:").exclude(name=SAMPLE_CHANNEL):
            root = Path(unquote(urlparse(channel.base_url).path))
            for repodata in sorted(root.glob("*/repodata.json")):
                report = import_repodata(channel=channel, source=str(repodata))
                self.stdout.write(
                    f"{report.channel}/{report.subdir}: {report.created} created, "
                    f"{report.updated} updated, {report.unchanged} unchanged"
                )
        for name, (summary, abi_coupled) in DEMO_PACKAGES.items():
            register_package(name=name, summary=summary, abi_coupled=abi_coupled)
        self.stdout.write(f"{len(DEMO_PACKAGES)} packages registered")
        if not no_samples:
            self._samples()

    def _samples(self) -> None:
        """Build the sample packages for this machine's subdir, register them and their
        channel, and sync it: the sync discovers the staged builds and plans their runs."""
        sources = settings.DEMO_DATA_DIR / "samples"
        subdir = conda_subdir(platform.system(), platform.machine())
        started = time.monotonic()
        try:
            sample = build_sample_channel(
                sources=sources,
                target=settings.VAR_DIR / "channels" / SAMPLE_CHANNEL,
                subdir=subdir,
                cache=settings.SAMPLE_BUILD_CACHE_DIR,
            )
        except SampleChannelError as exc:
            raise CommandError(f"the sample channel could not be built: {exc}") from exc
        cache = settings.SAMPLE_BUILD_CACHE_DIR
        seconds = time.monotonic() - started
        self.stdout.write(f"sample packages ready (rattler-build, cache {cache}): {seconds:.1f} s")
        channel = register_channel(name=SAMPLE_CHANNEL, url=sample.url, role=Channel.Role.STAGING)
        with transaction.atomic():
            (maintainer,) = upsert_maintainers(
                entries=[{"name": DEMO_MAINTAINER_NAME, "email": DEMO_MAINTAINER_EMAIL}]
            )
        for name in sample.names:
            if name not in DEMO_PACKAGES:  # the PyTorch stand-in's package is the real one
                register_package(
                    name=name, summary=sample.summary(name)[:300], maintainers=[maintainer]
                )
        self.stdout.write(
            f"sample channel {sample.url} ({subdir}): {len(sample.packages)} packages"
        )
        for result in sync_channels(channels=[channel]):
            for line in result.subdirs:
                if line.status != "missing":
                    self.stdout.write(f"{result.channel} {line.line()}")
