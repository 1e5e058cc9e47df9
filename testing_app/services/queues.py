"""Queue names: one per capability, derived from Variant/Platform rows and a host's probed facts.

Nothing here hard-codes a variant: adding a Variant row (say cuda13.4) adds its queue
`test.<subdir>.cuda13.4`, served by every host whose driver supports CUDA >= its minimum.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cmp_to_key

from rattler import Version
from rattler.exceptions import InvalidVersionError
from rq.serializers import DefaultSerializer

from testing_app.adapters.rq_serializers import HOST_SERIALIZER
from testing_app.adapters.rq_serializers import TrustedSideSerializer
from testing_app.models import Variant
from testing_app.planner.gpu_arch import Support
from testing_app.planner.gpu_arch import variant_support

logger = logging.getLogger(__name__)

TEST_QUEUE_PREFIX = "test"
INSTALL_QUEUE = "install"
PROMOTE_QUEUE = "promote"
DEFAULT_QUEUE = "default"
RUNNER_SEPARATOR = "@"
# The runners a test job may name (Job.required_runner); "" accepts either.
RUNNERS = ("conda-build", "rattler")
# Queues served by plain CPU workers (`manage.py rqworker`), never derived from capabilities.
CPU_SERVICE_QUEUES = (DEFAULT_QUEUE, INSTALL_QUEUE, PROMOTE_QUEUE)
# Queues only the trusted (web) side serves: promotions, notifications, e-mail, the reconciler.
TRUSTED_QUEUES = (DEFAULT_QUEUE, PROMOTE_QUEUE)


def is_host_queue(name: str) -> bool:
    """A queue hosts may serve (install checks, test.*): its jobs are JSON, never pickle."""
    return name == INSTALL_QUEUE or name.startswith(f"{TEST_QUEUE_PREFIX}.")


def queue_serializer(name: str):
    """The serializer jobs of queue `name` are written with (adapters/rq_serializers.py)."""
    return HOST_SERIALIZER if is_host_queue(name) else DefaultSerializer


class MixedQueuesError(ValueError):
    """A worker was asked to serve host queues and trusted queues together."""


def worker_serializer(queue_names: Iterable[str]):
    """What a worker serving `queue_names` reads: JSON only when it serves host queues (a host,
    or the web side's `rqworker install`), else the trusted side's serializer. A worker never
    serves both kinds: a host can write the jobs of the host queues, and a worker that may read
    pickle must never load them (MixedQueuesError)."""
    names = list(queue_names)
    hosts = [name for name in names if is_host_queue(name)]
    trusted = [name for name in names if not is_host_queue(name)]
    if hosts and trusted:
        raise MixedQueuesError(
            f"A worker serves host queues ({', '.join(hosts)}) or trusted queues "
            f"({', '.join(trusted)}), not both: hosts can write the first, and a worker of the "
            "trusted queues reads pickle. Run one worker for each (docs/operators.md)."
        )
    return HOST_SERIALIZER if hosts else TrustedSideSerializer


def capability_queue_name(*, subdir: str, variant_name: str, runner: str = "") -> str:
    """`test.<subdir>.<variant>`, e.g. test.linux-64.cuda12.4: the queue of one capability.
    A job that needs one runner goes to `test.<subdir>.<variant>@<runner>` (e.g. @rattler),
    which only hosts that have that runner listen to."""
    name = f"{TEST_QUEUE_PREFIX}.{subdir}.{variant_name}"
    return f"{name}{RUNNER_SEPARATOR}{runner}" if runner else name


def queue_for_cell(*, kind: str, subdir: str, variant_name: str, runner: str = "") -> str:
    """Where a job of `kind` on that cell is enqueued: install checks need no particular host."""
    if kind == "install_check":
        return INSTALL_QUEUE
    return capability_queue_name(subdir=subdir, variant_name=variant_name, runner=runner)


@dataclass(frozen=True)
class Capabilities:
    """What one worker process can serve: its host's platform and, if it drives one, a GPU."""

    subdir: str
    # Highest CUDA version the NVIDIA driver supports ("" without an NVIDIA GPU for this worker).
    max_cuda: str = ""
    # Installed ROCm version ("" without an AMD GPU for this worker).
    rocm_version: str = ""
    # Test runners available here ("conda-build", "rattler"), each with its own queues.
    runners: tuple[str, ...] = ()
    # Compute capabilities ("9.0") of the GPUs this worker pins; "" for one whose architecture
    # is unknown. Empty: the architecture is not considered (a whole host's CPU capabilities).
    compute_capabilities: tuple[str, ...] = ()


def _version(text: str) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersionError:
        logger.warning("ignoring unparsable version %r", text)
        return None


def serves_variant(capabilities: Capabilities, variant: Variant) -> bool:
    """True when a worker with these capabilities can run jobs of `variant`.

    cpu always; CUDA when the driver supports at least the variant's minimum driver CUDA (a
    driver runs code built for any older CUDA); ROCm likewise against the installed ROCm.
    """
    if variant.kind == Variant.Kind.CPU:
        return True
    if variant.kind == Variant.Kind.CUDA:
        have = _version(capabilities.max_cuda)
        need = _version(variant.min_driver_cuda or variant.accelerator_version)
        if have is None or need is None or have < need:
            return False
        return all(s.supported for s in architecture_support(capabilities, variant))
    if variant.kind == Variant.Kind.ROCM:
        have = _version(capabilities.rocm_version)
        need = _version(variant.accelerator_version)
        return have is not None and need is not None and have >= need
    return False


def architecture_support(capabilities: Capabilities, variant: Variant) -> list[Support]:
    """For each pinned GPU, whether some PyTorch release of this CUDA variant runs on it.
    Queues are per variant, not per release: a host serves a variant's queue when at least one
    release built for it runs on every GPU it pins, and refuses a job of a release that does
    not (execution.start_job), so that job waits for another host instead of failing."""
    if variant.kind != Variant.Kind.CUDA or not capabilities.compute_capabilities:
        return []
    cuda_version = variant.accelerator_version or variant.min_driver_cuda
    releases = list(variant.torch_releases.values_list("version", flat=True))
    return [
        variant_support(
            cuda_version=cuda_version,
            subdir=capabilities.subdir,
            capability=capability,
            torch_versions=releases,
        )
        for capability in capabilities.compute_capabilities
    ]


def served_variants(capabilities: Capabilities, variants: Iterable[Variant]) -> list[Variant]:
    """The variants served, scarcest first: newest CUDA (only new drivers take it), then ROCm,
    then cpu, because a GPU worker should not sit on CPU jobs while GPU jobs wait."""
    kind_rank = {Variant.Kind.CUDA: 0, Variant.Kind.ROCM: 1, Variant.Kind.CPU: 2}
    served = [v for v in variants if serves_variant(capabilities, v)]

    def compare(a: Variant, b: Variant) -> int:
        rank_a, rank_b = kind_rank.get(a.kind, 3), kind_rank.get(b.kind, 3)
        if rank_a != rank_b:
            return -1 if rank_a < rank_b else 1
        version_a = _version(a.accelerator_version) or Version("0")
        version_b = _version(b.accelerator_version) or Version("0")
        if version_a != version_b:
            return -1 if version_a > version_b else 1  # newest first
        return (a.name > b.name) - (a.name < b.name)

    return sorted(served, key=cmp_to_key(compare))


def queues_for_worker(
    *, capabilities: Capabilities, variants: Iterable[Variant], cpu_queues: Iterable[str] = ()
) -> list[str]:
    """Every queue a worker listens on, highest priority first: its capability queues (each
    followed by the queues of jobs that need one of its runners), then the CPU service queues
    it is configured for (install, default, promote)."""
    names = []
    for variant in served_variants(capabilities, variants):
        for runner in ("", *(r for r in capabilities.runners if r in RUNNERS)):
            names.append(
                capability_queue_name(
                    subdir=capabilities.subdir, variant_name=variant.name, runner=runner
                )
            )
    for name in cpu_queues:
        if name and name not in names:
            names.append(name)
    return names
