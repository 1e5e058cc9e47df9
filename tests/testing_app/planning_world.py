"""The demo's sample channel for tests: real .conda files (rattler-build's, from the session's
build cache, and the conda-build-layout ones) put into a temporary folder,
registered as the staging channel, with the reference rows (variants, releases) seeded."""

import io
import platform
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from rq.worker import SimpleWorker

from packages_app.adapters.sample_channel import SampleChannel
from packages_app.adapters.sample_channel import SamplePackage
from packages_app.adapters.sample_channel import add_recipe_packages
from packages_app.adapters.sample_channel import build_sample_channel
from packages_app.adapters.sample_channel import index_channel
from packages_app.models import Channel
from packages_app.services.packages import register_package
from packages_app.services.sync import register_channel
from testing_app.adapters.host_probe import conda_subdir
from testing_app.services.dispatch import rq_queue
from testing_app.services.queues import worker_serializer

SAMPLE_NAMES = (
    "pytorch",
    "sample-passes",
    "sample-fails-on-torch-2-5",
    "sample-unsatisfiable",
    "sample-no-tests",
    "sample-legacy-layout",
)
SUBDIR = conda_subdir(platform.system(), platform.machine())
# The python and pip stand-ins (they wrap the interpreter running the tests) and two samples
# with python tests; the tests' channel only, see recipes/python-samples/README.md.
PYTHON_SAMPLES = Path(__file__).resolve().parent / "recipes" / "python-samples"
PYTHON_SAMPLE_NAMES = ("sample-python-tests", "sample-python-pip-check-fails")


@dataclass
class SampleWorld:
    sample: SampleChannel
    channel: Channel


def seed_reference() -> None:
    call_command("seed_reference", stdout=io.StringIO())


def sample_world(directory: Path, *, register: bool = True) -> SampleWorld:
    """Reference rows, the sample channel on disk and as the staging channel, its packages."""
    seed_reference()
    sample = build_sample_channel(
        sources=settings.DEMO_DATA_DIR / "samples",
        target=directory / "samples",
        subdir=SUBDIR,
        cache=settings.SAMPLE_BUILD_CACHE_DIR,
    )
    channel = register_channel(name="samples", url=sample.url, role=Channel.Role.STAGING)
    if register:
        for name in SAMPLE_NAMES:
            register_package(name=name, summary=f"{name} for tests")
    return SampleWorld(sample=sample, channel=channel)


def add_python_samples(world: SampleWorld) -> list[SamplePackage]:
    """recipes/python-samples built by rattler-build (cached like the demo's samples) into the
    world's channel, which is indexed again, and their samples registered (not synced)."""
    added = add_recipe_packages(
        recipes=PYTHON_SAMPLES,
        target=world.sample.root,
        subdir=SUBDIR,
        cache=settings.SAMPLE_BUILD_CACHE_DIR,
    )
    index_channel(world.sample.root)
    for name in PYTHON_SAMPLE_NAMES:
        register_package(name=name, summary=f"{name} for tests")
    return added


def drain(*queues: str) -> None:
    """Run every queued job of these queues here (SimpleWorker: no fork, the test's database;
    rattler never runs in a forked child). Capability queues are not in settings.RQ_QUEUES, so
    the queues are built the way dispatch builds them."""
    worker = SimpleWorker(
        [rq_queue(name) for name in queues],
        connection=rq_queue("x").connection,
        serializer=worker_serializer(queues),
    )
    worker.work(burst=True)
