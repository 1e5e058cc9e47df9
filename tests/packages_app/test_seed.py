"""Seeding: reference rows from the committed CSVs, and the demo channels and packages."""

import csv
import io
from datetime import date

import pytest
from django.conf import settings
from django.core.management import call_command

from packages_app.management.commands.seed_demo import DEMO_PACKAGES
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import Platform
from testing_app.models import Variant

REFERENCE_DIR = settings.DEMO_DATA_DIR / "reference"

pytestmark = pytest.mark.django_db


def _csv_rows(name: str) -> list[dict]:
    with (REFERENCE_DIR / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _split(value: str) -> set[str]:
    return {v.strip() for v in value.split(";") if v.strip()}


def _seed_reference() -> str:
    out = io.StringIO()
    call_command("seed_reference", stdout=out)
    return out.getvalue()


def _reference_state() -> dict:
    return {
        "releases": list(TorchRelease.objects.order_by("pk").values()),
        "release_variants": sorted(
            TorchRelease.variants.through.objects.values_list("torchrelease_id", "variant_id")
        ),
        "release_platforms": sorted(
            TorchRelease.platforms.through.objects.values_list("torchrelease_id", "platform_id")
        ),
        "variants": list(Variant.objects.order_by("pk").values()),
        "platforms": list(Platform.objects.order_by("pk").values()),
        "channels": list(Channel.objects.order_by("pk").values()),
    }


def test_seed_reference_first_run_loads_every_csv_row():
    out = _seed_reference()

    variants = _csv_rows("variants.csv")
    assert TorchRelease.objects.count() == len(_csv_rows("torch_releases.csv")) == 48
    assert Variant.objects.count() == len(variants)
    assert list(Variant.objects.values_list("name", flat=True)) == [r["name"] for r in variants]
    assert list(Platform.objects.values_list("subdir", flat=True)) == [
        "linux-64",
        "linux-aarch64",
        "osx-arm64",
        "osx-64",
        "win-64",
    ]
    assert set(Channel.objects.values_list("name", flat=True)) == {
        "pytorch-snapshot",
        "conda-forge",
        "pytorch",
        "nvidia",
    }
    assert out.strip() == f"{len(variants)} variants, 5 platforms, 48 PyTorch releases, 4 channels"


def test_seed_reference_second_run_changes_nothing():
    _seed_reference()
    before = _reference_state()

    _seed_reference()

    assert _reference_state() == before


def test_seed_reference_release_variants_and_platforms_match_csv():
    _seed_reference()

    for row in _csv_rows("torch_releases.csv"):
        release = TorchRelease.objects.get(version=row["version"])
        assert {v.name for v in release.variants.all()} == _split(row["variants"]), row["version"]
        assert {p.subdir for p in release.platforms.all()} == _split(row["platforms"])
        assert set(release.python_versions) == _split(row["python_versions"])
        assert release.supported is (row["supported"] == "yes")
        assert release.kind == row["kind"]


def test_seed_reference_variant_select_specs_come_from_csv():
    _seed_reference()

    cuda = Variant.objects.get(name="cuda12.1")
    cpu = Variant.objects.get(name="cpu")
    assert cuda.select_specs == {
        "pytorch": ["pytorch-cuda 12.1.*"],
        "conda-forge": ["pytorch * cuda*", "cuda-version 12.1.*"],
    }
    assert (cuda.kind, cuda.accelerator_version, cuda.needs_gpu) == ("cuda", "12.1", True)
    assert cpu.select_specs == {"pytorch": ["cpuonly"], "conda-forge": ["pytorch * cpu*"]}
    assert cpu.needs_gpu is False


def test_seed_reference_admin_changed_supported_survives_reseed():
    _seed_reference()
    TorchRelease.objects.filter(version="2.12.0").update(supported=True)  # CSV: no
    TorchRelease.objects.filter(version="2.13.0").update(supported=False)  # CSV: yes

    _seed_reference()

    assert TorchRelease.objects.get(version="2.12.0").supported is True
    assert TorchRelease.objects.get(version="2.13.0").supported is False


def test_seed_reference_edited_csv_fields_are_restored_in_place():
    _seed_reference()
    release = TorchRelease.objects.get(version="2.1.0")
    TorchRelease.objects.filter(pk=release.pk).update(
        released_on=date(1999, 1, 1), python_versions=["2.7"]
    )
    release.variants.clear()
    Variant.objects.filter(name="cuda12.1").update(select_specs={}, needs_gpu=False)

    _seed_reference()

    restored = TorchRelease.objects.get(version="2.1.0")
    row = next(r for r in _csv_rows("torch_releases.csv") if r["version"] == "2.1.0")
    assert restored.pk == release.pk
    assert restored.released_on == date.fromisoformat(row["released_on"])
    assert set(restored.python_versions) == _split(row["python_versions"])
    assert {v.name for v in restored.variants.all()} == _split(row["variants"])
    cuda = Variant.objects.get(name="cuda12.1")
    assert cuda.needs_gpu is True
    assert cuda.select_specs["pytorch"] == ["pytorch-cuda 12.1.*"]


def test_seed_reference_deleted_release_comes_back_with_csv_supported():
    _seed_reference()
    TorchRelease.objects.filter(version="2.13.0").delete()

    _seed_reference()

    assert TorchRelease.objects.get(version="2.13.0").supported is True


def test_seed_reference_distro_channels_setting_upserts_channels(settings):
    settings.DISTRO_CHANNELS = [
        {"name": "pytorch", "url": "https://conda.anaconda.org/pytorch", "role": "upstream"},
        {
            "name": "pytorch",
            "label": "test",
            "url": "https://conda.anaconda.org/pytorch",
            "role": "staging",
            "subdirs": ["linux-64", "noarch"],
        },
    ]
    _seed_reference()
    staging = Channel.objects.get(name="pytorch", label="test")
    settings.DISTRO_CHANNELS[1]["url"] = "https://mirror.example.org/pytorch"

    _seed_reference()

    assert Channel.objects.count() == 2
    staging.refresh_from_db()
    assert (staging.role, staging.subdirs) == (Channel.Role.STAGING, ["linux-64", "noarch"])
    assert staging.base_url == "https://mirror.example.org/pytorch/label/test"


@pytest.mark.slow
def test_seed_demo_imports_demo_channels_and_registers_packages_idempotently():
    out = io.StringIO()
    # The sample channel (built into VAR_DIR and planned) has its own tests (test_demo_loop).
    call_command("seed_demo", "--no-samples", stdout=out)

    assert Build.objects.count() == 2181 + 1836
    assert Build.objects.filter(channel__name="pytorch-snapshot").count() == 2181
    assert Build.objects.filter(filename__endswith=".conda").exists()
    assert set(Package.objects.values_list("name", flat=True)) == set(DEMO_PACKAGES)
    torchvision = Package.objects.get(name="torchvision")
    assert torchvision.abi_coupled is True
    # Highest across channels in conda ordering: conda-forge's 0.26.0 beats the snapshot's 0.16.0.
    assert torchvision.latest_version == "0.26.0"
    assert not Build.objects.filter(name="torchvision", package__isnull=True).exists()
    before = list(Build.objects.order_by("pk").values())

    again = io.StringIO()
    call_command("seed_demo", "--no-samples", stdout=again)

    lines = [line for line in again.getvalue().splitlines() if " created, " in line]
    assert len(lines) == 16  # 14 lock-file subdirs, the snapshot's linux-64 and empty noarch
    assert all(" 0 created, 0 updated" in line for line in lines)
    assert list(Build.objects.order_by("pk").values()) == before
