"""manage.py seed_demo: reference rows, the real demo channels and the ecosystem packages."""

from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from django.core.management import call_command
from django.core.management.base import BaseCommand

from packages_app.models import Channel
from packages_app.services.catalog import import_repodata
from packages_app.services.packages import register_package

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
    help = "Seed the demo: reference rows, every subdir of the demo channels, demo packages."

    def handle(self, *args, **options):
        call_command("seed_reference", stdout=self.stdout)
        for channel in Channel.objects.filter(url__startswith="file:"):
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
