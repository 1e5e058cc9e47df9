"""Derive reference/torch_releases.csv and reference/variants.csv from pytorch_releases_source.csv.

Run from the project root: python packages_app/demo_data/derive_reference.py
The rules are written down here and in PROVENANCE.md; the output is committed.
"""

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "pytorch_releases_source.csv"
OUT_DIR = HERE / "reference"


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _variants(row: dict) -> list[str]:
    # Conda CUDA variants: the get-started page and the repodata snapshot where known (pytorch
    # channel era, <= 2.3); later releases: test-infra's wheel release matrix (what the release
    # ships; conda-forge follows it). ROCm: the wheel ROCm matrix.
    cuda = set(_split(row["conda_cuda_variants_getstarted"]))
    cuda |= set(_split(row["conda_cuda_variants_observed_linux64"]))
    if not cuda:
        cuda = set(_split(row["wheel_cuda_release_matrix"]))
    rocm = set(_split(row["wheel_rocm_release_matrix"]))
    names = ["cpu"] + [f"cuda{v}" for v in sorted(cuda, key=_key)]
    return names + [f"rocm{v}" for v in sorted(rocm, key=_key)]


def _platforms(version: str) -> list[str]:
    # linux-64 and win-64 throughout; osx-64 until 2.2 (PyTorch dropped Intel macOS builds after
    # 2.2); osx-arm64 from 1.13; linux-aarch64 from 2.4 (conda-forge builds in the lockfile data).
    v = _key(version)
    platforms = ["linux-64", "win-64"]
    if v <= (2, 2, 99):
        platforms.append("osx-64")
    if v >= (1, 13):
        platforms.append("osx-arm64")
    if v >= (2, 4):
        platforms.append("linux-aarch64")
    return platforms


def _pythons(row: dict) -> list[str]:
    observed = _split(row["conda_python_versions_observed_linux64"])
    wheel = [p for p in _split(row["wheel_python_release_matrix"]) if not p.endswith("t")]
    return observed or wheel


def main() -> None:
    rows = list(csv.DictReader(SOURCE.open()))
    finals = sorted(
        (r for r in rows if r["pytorch_version"]), key=lambda r: _key(r["pytorch_version"])
    )
    # Supported: the newest patch of every minor series from 2.0 on (what a distribution
    # still tests against); operators change the flag in the admin.
    newest_patch: dict[tuple[int, int], str] = {}
    for row in finals:
        major, minor = _key(row["pytorch_version"])[:2]
        newest_patch[(major, minor)] = row["pytorch_version"]
    supported = {v for (major, _minor), v in newest_patch.items() if major >= 2}
    OUT_DIR.mkdir(exist_ok=True)
    all_variants: set[str] = set()
    with (OUT_DIR / "torch_releases.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "version",
                "kind",
                "released_on",
                "supported",
                "variants",
                "platforms",
                "python_versions",
                "torchvision_version",
                "torchaudio_version",
                "source",
            ]
        )
        for row in reversed(finals):
            version = row["pytorch_version"]
            released = (
                row["stable_matrix_switch_date"]
                or row["conda_pytorch_channel_earliest_build_timestamp_utc"][:10]
            )
            variants = _variants(row)
            all_variants |= set(variants)
            writer.writerow(
                [
                    version,
                    "final",
                    released,
                    "yes" if version in supported else "no",
                    ";".join(variants),
                    ";".join(_platforms(version)),
                    ";".join(_pythons(row)),
                    row["torchvision_version"],
                    row["torchaudio_version"],
                    row["source"],
                ]
            )
    with (OUT_DIR / "variants.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "name",
                "kind",
                "version",
                "needs_gpu",
                "min_driver_cuda",
                "pytorch_channel_specs",
                "conda_forge_specs",
            ]
        )
        for name in sorted(all_variants, key=lambda n: (n != "cpu", n[:4], _key(n[4:] or "0"))):
            if name == "cpu":
                writer.writerow([name, "cpu", "", "no", "", "cpuonly", "pytorch * cpu*"])
            elif name.startswith("cuda"):
                v = name[4:]
                # The pytorch channel selected CUDA with cudatoolkit up to 1.12 and with the
                # pytorch-cuda metapackage (11.6 and later) from 1.13 on.
                pytorch_spec = f"pytorch-cuda {v}.*" if _key(v) >= (11, 6) else f"cudatoolkit {v}.*"
                writer.writerow(
                    [name, "cuda", v, "yes", v, pytorch_spec, f"pytorch * cuda*|cuda-version {v}.*"]
                )
            else:
                # Neither the pytorch channel nor conda-forge ships ROCm builds of PyTorch: the
                # variant exists for ROCm hosts and other channels, with no default specs.
                writer.writerow([name, "rocm", name[4:], "yes", "", "", ""])


if __name__ == "__main__":
    main()
