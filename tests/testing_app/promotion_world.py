"""A small, real promotion world on disk: an upstream channel (python, pytorch), a staging channel
with real package files, an empty local target channel, and the catalog rows around them.

Channels are real conda channels (package files written with conda-package-handling, indexed
by rattler), so the solver and the local backend run for real against them.
"""

from dataclasses import dataclass
from pathlib import Path

import django_rq
from rattler.index import index_fs
from rq.worker import SimpleWorker

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.adapters.rattler_sync import run_rattler
from testing_app.adapters.rq_serializers import TrustedSideSerializer
from testing_app.models import CellResult
from testing_app.models import Platform
from testing_app.models import Variant
from tests import factories
from tests.testing_app.packages import build_package
from tests.testing_app.packages import file_digests

TORCH = "2.5.1"


def drain(*queues: str) -> None:
    """Run every queued RQ job of these queues in this process (SimpleWorker: no fork, so the
    jobs see the test's database and rattler never runs in a forked child)."""
    django_rq.get_worker(*queues, worker_class=SimpleWorker, serializer=TrustedSideSerializer).work(
        burst=True
    )


def index_channel(root: Path) -> None:
    (root / "noarch").mkdir(parents=True, exist_ok=True)
    run_rattler(lambda: index_fs(root, write_zst=False, write_shards=False, force=True))


@dataclass
class World:
    upstream: Channel
    staging: Channel
    target: Channel
    target_dir: Path
    staging_dir: Path
    release: TorchRelease
    variant: Variant
    platform: Platform

    def stage(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        build: str = "py_0",
        depends: tuple[str, ...] = ("pytorch >=2.5,<2.6",),
        subdir: str = "linux-64",
        maintained: bool = True,
        passed: bool = True,
        abi_coupled: bool = False,
    ) -> Build:
        """A real package file in staging and its Build (with a package, a maintainer and a
        passed cell unless told otherwise)."""
        path = build_package(
            self.staging_dir,
            name=name,
            version=version,
            build=build,
            depends=depends,
            subdir=subdir,
        )
        digests = file_digests(path)
        package, _ = Package.objects.get_or_create(
            name=name, defaults={"status": Package.Status.ACTIVE, "abi_coupled": abi_coupled}
        )
        if maintained and not package.maintainers.exists():
            package.maintainers.add(factories.MaintainerFactory())
        record = factories.BuildFactory(
            channel=self.staging,
            package=package,
            name=name,
            version=version,
            build_string=build,
            subdir=subdir,
            filename=path.name,
            depends=list(depends),
            license="BSD-3-Clause",
            noarch="python" if subdir == "noarch" else "",
            sha256=digests["sha256"],
            md5=digests["md5"],
            size=digests["size"],
        )
        if passed:
            self.cell(record, "passed")
        return record

    def cell(self, build: Build, verdict: str, **extra) -> CellResult:
        platform = extra.pop("platform", None) or (
            self.platform if build.subdir == "noarch" else Platform.objects.get(subdir=build.subdir)
        )
        return CellResult.objects.create(
            build=build,
            package=build.package,
            torch_release=extra.pop("torch_release", self.release),
            variant=extra.pop("variant", self.variant),
            platform=platform,
            verdict=verdict,
            **extra,
        )


def make_world(tmp_path: Path) -> World:
    """Reference rows for PyTorch 2.5.1 (cpu, linux-64) and three real channels."""
    platform = factories.PlatformFactory(subdir="linux-64")
    variant = factories.VariantFactory(name="cpu", kind=Variant.Kind.CPU)
    release = factories.TorchReleaseFactory(version=TORCH, supported=True)
    release.variants.set([variant])
    release.platforms.set([platform])

    upstream_dir = tmp_path / "upstream"
    build_package(upstream_dir, name="python", version="3.11.10", build="h0_0", subdir="linux-64")
    build_package(
        upstream_dir,
        name="pytorch",
        version=TORCH,
        build="cpu_py311_0",
        subdir="linux-64",
        depends=("python >=3.11,<3.12.0a0",),
    )
    index_channel(upstream_dir)
    staging_dir = tmp_path / "staging"
    staging_dir.mkdir()
    target_dir = tmp_path / "target"
    return World(
        upstream=Channel.objects.create(
            name="upstream", url=upstream_dir.as_uri(), role=Channel.Role.UPSTREAM
        ),
        staging=Channel.objects.create(
            name="staging", url=staging_dir.as_uri(), role=Channel.Role.STAGING
        ),
        target=Channel.objects.create(
            name="target", url=target_dir.as_uri(), role=Channel.Role.TARGET
        ),
        target_dir=target_dir,
        staging_dir=staging_dir,
        release=release,
        variant=variant,
        platform=platform,
    )
