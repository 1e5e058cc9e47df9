"""Capability queues come from Variant/Platform data and the probed driver, never from code."""

import pytest

from testing_app.models import Variant
from testing_app.services.queues import Capabilities
from testing_app.services.queues import capability_queue_name
from testing_app.services.queues import queue_for_cell
from testing_app.services.queues import queues_for_worker
from testing_app.services.queues import serves_variant


@pytest.fixture
def variants(reference_data):
    return list(Variant.objects.all())


@pytest.mark.django_db
def test_queues_for_worker_driver_cuda_12_4_serves_cuda_up_to_12_4_and_cpu(variants):
    queues = queues_for_worker(
        capabilities=Capabilities(subdir="linux-64", max_cuda="12.4"),
        variants=variants,
        cpu_queues=["install"],
    )
    assert queues[0] == "test.linux-64.cuda12.4"  # newest CUDA first: scarcest capability
    assert "test.linux-64.cuda11.8" in queues
    assert "test.linux-64.cuda12.6" not in queues
    assert not any("rocm" in q for q in queues)
    assert queues[-2:] == ["test.linux-64.cpu", "install"]


@pytest.mark.django_db
def test_queues_for_worker_without_gpu_serves_cpu_only(variants):
    queues = queues_for_worker(capabilities=Capabilities(subdir="osx-arm64"), variants=variants)
    assert queues == ["test.osx-arm64.cpu"]


@pytest.mark.django_db
def test_queues_for_worker_rocm_host_serves_rocm_up_to_its_version(variants):
    queues = queues_for_worker(
        capabilities=Capabilities(subdir="linux-64", rocm_version="6.2.1"), variants=variants
    )
    assert "test.linux-64.rocm6.2" in queues
    assert "test.linux-64.rocm6.3" not in queues
    assert not any("cuda" in q for q in queues)


@pytest.mark.django_db
def test_new_variant_row_adds_its_queue_without_code_change(variants):
    Variant.objects.create(
        name="cuda99.1", kind=Variant.Kind.CUDA, accelerator_version="99.1", min_driver_cuda="99.1"
    )
    new = queues_for_worker(
        capabilities=Capabilities(subdir="linux-64", max_cuda="99.2"),
        variants=Variant.objects.all(),
    )
    assert new[0] == "test.linux-64.cuda99.1"


@pytest.mark.django_db
def test_serves_variant_compares_versions_as_versions_not_strings():
    cuda_12_10 = Variant(name="cuda12.10", kind="cuda", min_driver_cuda="12.10")
    assert not serves_variant(Capabilities("linux-64", max_cuda="12.9"), cuda_12_10)
    assert serves_variant(Capabilities("linux-64", max_cuda="13.0"), cuda_12_10)
    assert not serves_variant(Capabilities("linux-64", max_cuda="garbage"), cuda_12_10)


def test_queue_for_cell_routes_install_checks_to_the_install_queue():
    assert queue_for_cell(kind="install_check", subdir="win-64", variant_name="cpu") == "install"
    assert queue_for_cell(kind="test", subdir="win-64", variant_name="cpu") == "test.win-64.cpu"
    assert capability_queue_name(subdir="linux-64", variant_name="cuda12.4") == (
        "test.linux-64.cuda12.4"
    )
