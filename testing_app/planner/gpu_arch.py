"""Which NVIDIA GPU architectures a PyTorch build can run on (pure: no Django, no I/O but
reading the packaged table once).

A CUDA build carries machine code (cubins) for a list of compute capabilities, its
TORCH_CUDA_ARCH_LIST, and optionally PTX for the last one. A GPU of compute capability X.Y runs
the build when the build has a cubin X.Z with Z <= Y (cubins run on later minors of the same
major), or PTX for a capability <= X.Y (the driver compiles it). Anything else fails at the first
kernel with "no kernel image is available": a hardware mismatch, not a package failure.

The table (reference/cuda_arch_support.csv, see reference/PROVENANCE.md) gives the verified
lists. Where it has no row, only what the CUDA toolkit itself makes certain is applied
(TOOLKIT_LIMITS): nvcc before 12.8 cannot target Blackwell, before 11.8 not Hopper/Ada, and
CUDA 13 no longer targets anything below 7.5.
"""

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE_PATH = Path(__file__).parent / "reference" / "cuda_arch_support.csv"

# Marketing family of each compute-capability major (minor for the splits inside a major).
FAMILIES = {
    (3, None): "Kepler",
    (5, None): "Maxwell",
    (6, None): "Pascal",
    (7, None): "Volta",
    (7, 5): "Turing",
    (8, None): "Ampere",
    (8, 9): "Ada Lovelace",
    (9, None): "Hopper",
    (10, None): "Blackwell",
    (11, None): "Blackwell",
    (12, None): "Blackwell",
}

# (first CUDA version, last CUDA version or None, lowest capability, highest capability it can
# target) from NVIDIA's CUDA toolkit release notes; used only where the table has no row.
TOOLKIT_LIMITS = (
    ((0, 0), (11, 7), (3, 5), (8, 7)),
    ((11, 8), (12, 7), (3, 5), (9, 0)),
    ((12, 8), (12, 9), (5, 0), (12, 1)),
    ((13, 0), None, (7, 5), (12, 1)),
)


class ArchTableError(ValueError):
    """The architecture table or a version in it could not be read."""


def parse_capability(text: str) -> tuple[int, int] | None:
    """ "9.0" -> (9, 0); "" or "[N/A]" -> None (unknown: old nvidia-smi, no NVML)."""
    major, sep, minor = (text or "").strip().partition(".")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def sm_name(capability: str) -> str:
    """ "9.0" -> "sm_90", "12.0" -> "sm_120" ("" when unknown)."""
    parsed = parse_capability(capability)
    return f"sm_{parsed[0]}{parsed[1]}" if parsed else ""


def family_name(capability: str) -> str:
    """ "9.0" -> "Hopper", "8.9" -> "Ada Lovelace" ("" when unknown)."""
    parsed = parse_capability(capability)
    if parsed is None:
        return ""
    return FAMILIES.get(parsed, FAMILIES.get((parsed[0], None), ""))


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.strip().split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ArchTableError(f"not a version: {version!r}")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class ArchList:
    """One build configuration: cubins for `cubins`, PTX for `ptx` (may be empty)."""

    cubins: tuple[tuple[int, int], ...]
    ptx: tuple[tuple[int, int], ...]
    source: str

    def runs_on(self, capability: tuple[int, int]) -> bool:
        major, minor = capability
        if any(c[0] == major and c[1] <= minor for c in self.cubins):
            return True
        return any(p <= capability for p in self.ptx)

    def describe(self) -> str:
        names = [f"sm_{a}{b}" for a, b in self.cubins]
        names += [f"compute_{a}{b} (PTX)" for a, b in self.ptx]
        return ", ".join(names)


@dataclass(frozen=True)
class ArchRow:
    torch_from: tuple[int, int]
    torch_to: tuple[int, int] | None
    cuda: tuple[int, int]
    subdir: str
    archs: ArchList

    def covers(self, torch: tuple[int, int], cuda: tuple[int, int], subdir: str) -> bool:
        in_range = self.torch_from <= torch and (self.torch_to is None or torch <= self.torch_to)
        return in_range and self.cuda == cuda and self.subdir == subdir


def parse_arch_list(text: str, source: str = "") -> ArchList:
    """TORCH_CUDA_ARCH_LIST syntax: "7.0;7.5;9.0+PTX" (a "+PTX" entry has a cubin and PTX)."""
    cubins, ptx = [], []
    for item in text.replace(" ", ";").split(";"):
        if not item:
            continue
        name, plus, suffix = item.partition("+")
        if plus and suffix != "PTX":
            raise ArchTableError(f"unknown arch suffix in {item!r}")
        capability = parse_capability(name)
        if capability is None:
            raise ArchTableError(f"not a compute capability: {item!r}")
        cubins.append(capability)
        if plus:
            ptx.append(capability)
    return ArchList(cubins=tuple(cubins), ptx=tuple(ptx), source=source)


def parse_table(text: str) -> tuple[ArchRow, ...]:
    rows = []
    for line, record in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            rows.append(
                ArchRow(
                    torch_from=_major_minor(record["torch_from"]),
                    torch_to=_major_minor(record["torch_to"]) if record["torch_to"] else None,
                    cuda=_major_minor(record["cuda"]),
                    subdir=record["subdir"].strip(),
                    archs=parse_arch_list(record["arch_list"], record["source"].strip()),
                )
            )
        except (KeyError, ArchTableError) as exc:
            raise ArchTableError(f"architecture table line {line}: {exc}") from exc
    return tuple(rows)


@cache
def load_table() -> tuple[ArchRow, ...]:
    return parse_table(TABLE_PATH.read_text())


@dataclass(frozen=True)
class Support:
    """Whether a GPU runs a (PyTorch release, CUDA variant) build, and why."""

    supported: bool
    reason: str


def _toolkit_support(cuda: tuple[int, int], capability: tuple[int, int]) -> Support:
    cuda_text = f"{cuda[0]}.{cuda[1]}"
    for first, last, lowest, highest in TOOLKIT_LIMITS:
        if first <= cuda and (last is None or cuda <= last):
            if capability > highest:
                return Support(False, f"CUDA {cuda_text} cannot target this architecture")
            if capability < lowest:
                return Support(False, f"CUDA {cuda_text} no longer targets this architecture")
            break
    return Support(True, "no verified build list; the CUDA toolkit can target it")


def build_support(
    *,
    torch_version: str,
    cuda_version: str,
    subdir: str,
    capability: str,
    table: tuple[ArchRow, ...] | None = None,
) -> Support:
    """Whether a GPU of `capability` runs PyTorch `torch_version` built for `cuda_version` on
    `subdir`. An unknown capability is allowed (nothing to compare; the probe says why)."""
    cap = parse_capability(capability)
    if cap is None:
        return Support(True, "GPU architecture unknown")
    try:
        cuda, torch = _major_minor(cuda_version), _major_minor(torch_version)
    except ArchTableError as exc:
        return Support(True, f"not comparable ({exc})")
    rows = load_table() if table is None else table
    row = next((r for r in rows if r.covers(torch, cuda, subdir)), None)
    if row is None:
        return _toolkit_support(cuda, cap)
    if row.archs.runs_on(cap):
        return Support(True, f"built for {row.archs.describe()}")
    return Support(
        False,
        f"PyTorch {torch_version} cuda{cuda_version} is built for {row.archs.describe()} only",
    )


def variant_support(
    *,
    cuda_version: str,
    subdir: str,
    capability: str,
    torch_versions: Iterable[str],
    table: tuple[ArchRow, ...] | None = None,
) -> Support:
    """Whether any of `torch_versions` built for this CUDA variant runs on the GPU: the queue
    test (queues are per variant, not per release; a release that does not run on it is
    refused per job, see build_support). Without releases, only the toolkit's limits apply."""
    cap = parse_capability(capability)
    if cap is None:
        return Support(True, "GPU architecture unknown")
    versions = sorted(set(torch_versions))
    if not versions:
        try:
            return _toolkit_support(_major_minor(cuda_version), cap)
        except ArchTableError as exc:
            return Support(True, f"not comparable ({exc})")
    refusals = []
    for version in versions:
        support = build_support(
            torch_version=version,
            cuda_version=cuda_version,
            subdir=subdir,
            capability=capability,
            table=table,
        )
        if support.supported:
            return Support(True, f"PyTorch {version}: {support.reason}")
        refusals.append(support.reason)
    return Support(False, f"no PyTorch release runs on it: {refusals[-1]}")
