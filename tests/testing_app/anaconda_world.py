"""One kornia build staged for an anaconda.org target and passing the gate: the starting point
of the anaconda.org promotion tests, whether anaconda.org is mocked at the HTTP boundary
(tests/testing_app) or a local HTTP stand-in (tests/faults)."""

from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Channel
from testing_app.models import InstallabilityCheck
from testing_app.models import Variant
from tests import factories

FILENAME = "kornia-0.7.3-py_0.conda"


def stage_passing_kornia(*, conda_url: str, sha256: str, **build_fields) -> Build:
    """Staging and target channels under `conda_url`, a supported release with one cpu cell
    that passed, and the two installability checks the gate asks for, all done."""
    platform = factories.PlatformFactory(subdir="linux-64")
    variant = factories.VariantFactory(name="cpu", kind=Variant.Kind.CPU)
    release = factories.TorchReleaseFactory(version="2.5.1", supported=True)
    release.variants.set([variant])
    release.platforms.set([platform])
    staging = Channel.objects.create(
        name="pytorch-staging", url=f"{conda_url}/pytorch-staging", role="staging"
    )
    target = Channel.objects.create(name="pytorch", url=f"{conda_url}/pytorch", role="target")
    package = factories.PackageFactory(name="kornia")
    package.maintainers.add(factories.MaintainerFactory())
    build = factories.BuildFactory(
        channel=staging,
        package=package,
        name="kornia",
        version="0.7.3",
        build_string="py_0",
        filename=FILENAME,
        depends=["pytorch >=2.5,<2.6"],
        sha256=sha256,
        **build_fields,
    )
    factories.CellResultFactory(
        build=build, package=package, torch_release=release, variant=variant, platform=platform
    )
    for label in ("alone", "pytorch"):
        InstallabilityCheck.objects.create(
            kind="gate",
            subject_key=f"build:{build.pk}",
            build=build,
            target_channel=target,
            subdir="linux-64",
            label=label,
            state="done",
            ok=True,
            finished_at=timezone.now(),
        )
    return build
