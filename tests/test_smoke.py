"""The project's wiring: settings, migrations and reference seeding."""

import pytest
from django.core.management import call_command

from packages_app.models import TorchRelease
from testing_app.models import Variant


@pytest.mark.django_db
def test_seed_reference_loads_releases_and_variants_idempotently(reference_data):
    releases = TorchRelease.objects.count()
    call_command("seed_reference", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert TorchRelease.objects.count() == releases == 48
    release = TorchRelease.objects.get(version="2.1.0")
    assert {v.name for v in release.variants.all()} >= {"cpu", "cuda11.8", "cuda12.1"}
    assert Variant.objects.get(name="cuda12.4").select_specs["pytorch"] == ["pytorch-cuda 12.4.*"]
