"""What makes a PyTorch conda record a build of a variant: data covering every selector PyTorch
used across its history, for the planner's applicability (planner/applicability.py) and the
oracle test alike.

A variant is the set of environments it can stand for. Each environment is a list of *probe
records* (`name version build`) that the environment holds, plus the virtual packages of the
machine (`__cuda` for a CUDA variant; platform ones come from the cell). The history they
cover, by kind:

- cpu: `pytorch-mutex 1.0 cpu` (pytorch channel, 1.8 on; `cpuonly` 2.0 depends on it; CUDA
  builds constrain `cpuonly <0`), and nothing else: a CPU environment has no `__cuda`.
- cuda X.Y, one environment per mechanism:
  - `cudatoolkit X.Y` (pytorch channel up to 1.12, which built cu116 with `cudatoolkit 11.6`;
    conda-forge up to CUDA 11.8),
  - `pytorch-cuda X.Y` (pytorch channel from 1.13),
  - `cuda-version X.Y` (conda-forge and nvidia from CUDA 12; conda-forge's `cuda*` builds
    depend on it and on `__cuda`),
  each with `pytorch-mutex 1.0 cuda` (pytorch channel) and `__cuda X.Y` (the driver).
- rocm and anything else: no conda channel ships it, so no environment.

A PyTorch record (pytorch, and the legacy pytorch-cpu / pytorch-gpu builds of the 0.x-1.1
pytorch channel) is *claimed* by a variant's environment when its metadata says so: every spec
it has on an accelerator name (ACCELERATOR_NAMES) matches the environment's probe, and a CUDA
environment needs at least one of them (a record depending on no accelerator package is a CPU
build: conda-forge's `cpu_*`, the pytorch channel's `*_cpu_0` before pytorch-mutex). No build
string is parsed: conda-forge's `pytorch * cuda*` / `pytorch * cpu*` selectors are honoured as
what they are, specs of the builds that carry them, matched by py-rattler.
"""

from dataclasses import dataclass

CPU, CUDA = "cpu", "cuda"
# Packages (and the virtual package) whose presence makes an environment a CUDA one.
ACCELERATOR_NAMES = frozenset({"cudatoolkit", "pytorch-cuda", "cuda-version", "__cuda"})
# The legacy CPU/GPU names were PyTorch builds themselves in the 0.x-1.1 pytorch channel; on
# conda-forge they are metapackages depending on pytorch (read then as ordinary builds).
TORCH_BUILD_NAMES = frozenset({"pytorch", "pytorch-cpu", "pytorch-gpu"})


@dataclass(frozen=True)
class VariantEnvironment:
    """One environment a variant stands for: probe records (`name version build`) and the
    virtual packages (`__cuda version`) it adds to the platform's."""

    mechanism: str
    records: tuple[str, ...]
    virtual: tuple[str, ...] = ()
    needs_accelerator: bool = False


# Templates per variant kind; {version}: the variant's accelerator version, {driver}: the
# driver CUDA version it needs (min_driver_cuda, else the version).
ENVIRONMENTS: dict[str, tuple[VariantEnvironment, ...]] = {
    CPU: (VariantEnvironment("pytorch-mutex cpu", ("pytorch-mutex 1.0 cpu", "cpuonly 2.0 0")),),
    CUDA: tuple(
        VariantEnvironment(
            mechanism,
            ("pytorch-mutex 1.0 cuda", f"{mechanism} {{version}} 0"),
            ("__cuda {driver} 0",),
            needs_accelerator=True,
        )
        for mechanism in ("cudatoolkit", "pytorch-cuda", "cuda-version")
    ),
}


def environments_of(kind: str, version: str, driver: str = "") -> tuple[VariantEnvironment, ...]:
    """The environments of one variant (none for kinds no conda channel ships)."""
    if kind == CUDA and not version:
        return ()
    fill = {"version": version, "driver": driver or version}
    return tuple(
        VariantEnvironment(
            e.mechanism,
            tuple(r.format(**fill) for r in e.records),
            tuple(v.format(**fill) for v in e.virtual),
            e.needs_accelerator,
        )
        for e in ENVIRONMENTS.get(kind, ())
    )
