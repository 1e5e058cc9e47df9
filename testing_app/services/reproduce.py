"""How a maintainer reruns one cell on their own machine: the same channels in the same order
and priority, the same pins, the same virtual packages, the same test tool.

Everything is derived from the job row with the functions the runner itself uses to build its
command line (channel order, extra specs), so the script cannot drift from what the host ran.
It only reads; it sits with the services because the runner's command-line builders do.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from dataclasses import field

from django.conf import settings

from packages_app.selectors.channel_stack import distribution_stack
from testing_app.models import Job
from testing_app.services.conda_runner import channel_urls
from testing_app.services.conda_runner import extra_deps

CONDA_BUILD = "conda-build"
RATTLER_BUILD = "rattler-build"


@dataclass(frozen=True)
class Reproduction:
    """One cell's local rerun: facts first, then the commands built from them."""

    job_id: int
    cell: str
    verdict: str
    tool: str
    channels: list[str]
    channel_priority: str
    pins: list[str]
    stack_environment: dict[str, str]
    environment: dict[str, str]
    package_url: str
    filename: str
    sha256: str
    notes: list[str] = field(default_factory=list)

    @property
    def test_command(self) -> list[str]:
        package = f"./{self.filename}"
        if self.tool == RATTLER_BUILD:
            argv = ["rattler-build", "test", "--package-file", package]
            for channel in self.channels:
                argv += ["--channel", channel]
            return argv
        argv = [CONDA_BUILD, "--test", package, "--override-channels"]
        for channel in self.channels:
            argv += ["-c", channel]
        argv += ["--croot", "./croot"]
        if self.pins:
            argv += ["--extra-deps", *self.pins]
        return argv

    def as_dict(self) -> dict:
        return {
            "job": self.job_id,
            "cell": self.cell,
            "verdict": self.verdict,
            "tool": self.tool,
            "channels": self.channels,
            "channel_priority": self.channel_priority,
            "stack_environment": self.stack_environment,
            "pins": self.pins,
            "environment": self.environment,
            "package": {"url": self.package_url, "filename": self.filename, "sha256": self.sha256},
            "test_command": self.test_command,
            "notes": self.notes,
            "script": self.script(),
        }

    def script(self) -> str:
        """A bash script: download and verify the package, then run the test as the host did."""
        quote = shlex.quote
        lines = [
            "#!/usr/bin/env bash",
            f"# Reproduce cell {self.cell}",
            f"# Recorded verdict: {self.verdict or 'none yet'} (job {self.job_id}).",
            *(f"# {note}" for note in self.notes),
            "set -euo pipefail",
            "",
            "# The distribution's channel stack: the channels below in this order, its priority",
            "# mode and its pip rule, as the host's runner had them.",
            *(f"export {name}={quote(value)}" for name, value in self.stack_environment.items()),
        ]
        if self.environment:
            lines.append("# Virtual packages of the host that ran the cell (conda's overrides).")
            lines += [f"export {name}={quote(value)}" for name, value in self.environment.items()]
        lines += [
            "",
            'workdir="${1:-$(mktemp -d)}"',
            'mkdir -p "$workdir" && cd "$workdir"',
            f"curl -fsSL -o {quote(self.filename)} {quote(self.package_url)}",
        ]
        if self.sha256:
            lines.append(f"echo {quote(f'{self.sha256}  {self.filename}')} | sha256sum -c -")
        lines += ["", " ".join(quote(part) for part in self.test_command), ""]
        return "\n".join(lines)


def _virtual_package_overrides(job: Job) -> dict[str, str]:
    """CONDA_OVERRIDE_* that make a solve on another machine see the cell's machine: the
    variant's CUDA (what the host's driver offered at least) and the planned glibc."""
    environment = {}
    if job.variant.kind == job.variant.Kind.CUDA and job.variant.accelerator_version:
        environment["CONDA_OVERRIDE_CUDA"] = job.variant.accelerator_version
    if job.platform.subdir.startswith("linux"):
        environment["CONDA_OVERRIDE_GLIBC"] = settings.PLAN_GLIBC_VERSION
    return environment


def _tool(job: Job) -> str:
    """The tool that ran (or will run) the test; v1 packages are tested with rattler-build."""
    if job.runner == RATTLER_BUILD or job.required_runner == RATTLER_BUILD:
        return RATTLER_BUILD
    return CONDA_BUILD


def get_reproduction(job: Job) -> Reproduction:
    build = job.build
    cell = (
        f"{build.filename} ({build.subdir}) x PyTorch {job.torch_release.version} x "
        f"{job.variant.name} x {job.platform.subdir}"
        + (f", python {job.python}" if job.python else "")
    )
    notes = []
    if job.pinned_build_id:
        pinned = job.pinned_build
        notes.append(f"Re-test with {pinned.name} {pinned.version} ({pinned.state}) pinned.")
    if job.variant.needs_gpu:
        notes.append(f"Needs a GPU whose driver supports CUDA {job.variant.min_driver_cuda}.")
    tool = _tool(job)
    pins = extra_deps(job)
    stack = distribution_stack()
    if tool == RATTLER_BUILD:
        notes.append(
            "rattler-build takes no extra specs: pins are listed for reference: " + ", ".join(pins)
        )
    return Reproduction(
        job_id=job.pk,
        cell=cell,
        verdict=job.verdict,
        tool=tool,
        channels=channel_urls(job),
        channel_priority=stack.priority,
        pins=pins,
        stack_environment=stack.conda_environment(),
        environment=_virtual_package_overrides(job),
        package_url=f"{build.channel.base_url}/{build.subdir}/{build.filename}",
        filename=build.filename,
        sha256=build.sha256 or "",
        notes=notes,
    )
