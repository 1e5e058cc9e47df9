"""Reference rows every environment needs: variants, platforms, PyTorch releases, channels."""

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.db import transaction

from packages_app.models import Channel
from packages_app.models import TorchRelease
from testing_app.models import Platform
from testing_app.models import Variant

PLATFORM_ORDER = ["linux-64", "linux-aarch64", "osx-arm64", "osx-64", "win-64"]


@dataclass(frozen=True)
class SeedReport:
    variants: int
    platforms: int
    torch_releases: int
    channels: int


def _split(value: str, sep: str = ";") -> list[str]:
    return [v.strip() for v in value.split(sep) if v.strip()]


@transaction.atomic
def seed_reference(*, reference_dir: Path, channels: list[dict]) -> SeedReport:
    """Upsert variants, platforms and PyTorch releases from the reference CSVs, and channels.

    Idempotent: running it again updates rows in place. `supported` flags an operator changed
    in the admin are kept; new releases take the CSV's value.
    """
    variants = _seed_variants(reference_dir / "variants.csv")
    releases_rows = list(csv.DictReader((reference_dir / "torch_releases.csv").open()))
    platforms = _seed_platforms({p for row in releases_rows for p in _split(row["platforms"])})
    for row in releases_rows:
        release, created = TorchRelease.objects.update_or_create(
            version=row["version"],
            defaults={
                "kind": row["kind"],
                "released_on": date.fromisoformat(row["released_on"])
                if row["released_on"]
                else None,
                "python_versions": _split(row["python_versions"]),
                "torchvision_version": row["torchvision_version"],
                "torchaudio_version": row["torchaudio_version"],
                "source": row["source"],
            },
            create_defaults={
                "kind": row["kind"],
                "released_on": date.fromisoformat(row["released_on"])
                if row["released_on"]
                else None,
                "python_versions": _split(row["python_versions"]),
                "torchvision_version": row["torchvision_version"],
                "torchaudio_version": row["torchaudio_version"],
                "source": row["source"],
                "supported": row["supported"] == "yes",
            },
        )
        release.variants.set([variants[name] for name in _split(row["variants"])])
        release.platforms.set([platforms[subdir] for subdir in _split(row["platforms"])])
    seeded_channels = sync_configured_channels(channels=channels)
    return SeedReport(
        variants=len(variants),
        platforms=len(platforms),
        torch_releases=len(releases_rows),
        channels=seeded_channels,
    )


def _seed_variants(path: Path) -> dict[str, Variant]:
    variants = {}
    for order, row in enumerate(csv.DictReader(path.open())):
        select_specs = {}
        if row["pytorch_channel_specs"]:
            select_specs["pytorch"] = _split(row["pytorch_channel_specs"], "|")
        if row["conda_forge_specs"]:
            select_specs["conda-forge"] = _split(row["conda_forge_specs"], "|")
        variant, _ = Variant.objects.update_or_create(
            name=row["name"],
            defaults={
                "kind": row["kind"],
                "accelerator_version": row["version"],
                "needs_gpu": row["needs_gpu"] == "yes",
                "min_driver_cuda": row["min_driver_cuda"],
                "select_specs": select_specs,
                "sort_order": order,
            },
        )
        variants[variant.name] = variant
    return variants


def _seed_platforms(subdirs: set[str]) -> dict[str, Platform]:
    platforms = {}
    ordered = sorted(subdirs, key=lambda s: (PLATFORM_ORDER + [s]).index(s))
    for subdir in ordered:
        os_name, arch = subdir.split("-", 1)
        platform, _ = Platform.objects.update_or_create(
            subdir=subdir,
            defaults={"os_name": os_name, "arch": arch, "sort_order": ordered.index(subdir)},
        )
        platforms[subdir] = platform
    return platforms


def sync_configured_channels(*, channels: list[dict]) -> int:
    """Create or update Channel rows from configuration (settings.DISTRO_CHANNELS)."""
    for entry in channels:
        Channel.objects.update_or_create(
            name=entry["name"],
            label=entry.get("label", ""),
            defaults={
                "url": entry["url"],
                "role": entry.get("role", Channel.Role.UPSTREAM),
                "subdirs": entry.get("subdirs", []),
            },
        )
    return len(channels)
