"""The axes of the matrix besides builds and PyTorch releases: variants and platforms."""

from django.db import models
from django.db.models import Q


class VariantKind(models.TextChoices):
    CPU = "cpu", "CPU"
    CUDA = "cuda", "CUDA"
    ROCM = "rocm", "ROCm"


class Variant(models.Model):
    """A hardware flavour of PyTorch (cpu, cuda12.4, rocm6.2) and the specs that select it."""

    Kind = VariantKind

    name = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # "12.4" for cuda12.4, "6.2" for rocm6.2, "" for cpu.
    accelerator_version = models.CharField(max_length=16, blank=True)
    needs_gpu = models.BooleanField(default=False)
    # The host's driver must support at least this CUDA version (empty: no CUDA needed).
    min_driver_cuda = models.CharField(max_length=16, blank=True)
    # Extra specs that select the variant, per channel flavour:
    # {"pytorch": ["pytorch-cuda 12.4.*"],
    #  "conda-forge": ["pytorch * cuda*", "cuda-version 12.4.*"]}
    select_specs = models.JSONField(default=dict, blank=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=VariantKind.values), name="variant_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Platform(models.Model):
    """A conda subdir that jobs run on (linux-64, linux-aarch64, osx-arm64, win-64)."""

    subdir = models.CharField(max_length=32, unique=True)
    os_name = models.CharField(max_length=16)
    arch = models.CharField(max_length=16)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "subdir"]
        constraints = [
            models.CheckConstraint(
                condition=Q(subdir__regex=r"^[a-z0-9]+-[a-z0-9]+$"), name="platform_subdir_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.subdir
