"""factory_boy factories, one per model that tests build directly."""

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import Platform
from testing_app.models import Variant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")


class MaintainerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Maintainer

    name = factory.Sequence(lambda n: f"Maintainer {n}")
    email = factory.Sequence(lambda n: f"maintainer{n}@example.org")
    github_handle = factory.Sequence(lambda n: f"maint{n}")


class PackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Package
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"pkg{n}")
    summary = "A package for tests"
    status = Package.Status.ACTIVE


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("name", "label")

    name = factory.Sequence(lambda n: f"channel{n}")
    label = ""
    url = factory.LazyAttribute(lambda o: f"https://conda.example.org/{o.name}")
    role = Channel.Role.STAGING


class BuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Build

    channel = factory.SubFactory(ChannelFactory)
    name = factory.Sequence(lambda n: f"pkg{n}")
    version = "1.0.0"
    build_string = "py311_0"
    build_number = 0
    subdir = "linux-64"
    filename = factory.LazyAttribute(lambda o: f"{o.name}-{o.version}-{o.build_string}.conda")
    depends = factory.LazyFunction(list)
    depends_names = factory.LazyAttribute(lambda o: sorted({d.split()[0] for d in o.depends}))
    record_digest = factory.LazyAttribute(lambda o: hashlib.sha256(o.filename.encode()).hexdigest())


class PlatformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Platform
        django_get_or_create = ("subdir",)

    subdir = "linux-64"
    os_name = factory.LazyAttribute(lambda o: o.subdir.split("-")[0])
    arch = factory.LazyAttribute(lambda o: o.subdir.split("-")[1])


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant
        django_get_or_create = ("name",)

    name = "cpu"
    kind = Variant.Kind.CPU


class TorchReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TorchRelease
        django_get_or_create = ("version",)

    version = factory.Sequence(lambda n: f"2.{n}.0")
    supported = True


# --- factories for the admin tests (package tokens, proposals, hosts, runs, jobs, results) ---


class PackageTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "packages_app.PackageToken"

    package = factory.SubFactory(PackageFactory)
    name = factory.Sequence(lambda n: f"ci-{n}")
    token_hash = factory.Sequence(
        lambda n: hashlib.sha256(f"package-token-{n}".encode()).hexdigest()
    )


class ProposalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "packages_app.Proposal"

    package_name = factory.Sequence(lambda n: f"proposed{n}")
    summary = "A proposed package"
    home_url = "https://example.org/home"
    repo_url = "https://example.org/repo"
    recipe_url = "https://example.org/recipe/meta.yaml"
    license = "BSD-3-Clause"
    rationale = "Builds on PyTorch."
    maintainers_data = factory.LazyFunction(
        lambda: [{"name": "Ada", "email": "ada@example.org", "github_handle": "ada"}]
    )


class EnrollmentTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.EnrollmentToken"

    name = factory.Sequence(lambda n: f"enroll-{n}")
    token_hash = factory.Sequence(
        lambda n: hashlib.sha256(f"enroll-token-{n}".encode()).hexdigest()
    )


class HostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Host"

    name = factory.Sequence(lambda n: f"gpu-host-{n}")
    platform = factory.SubFactory(PlatformFactory)
    state = "active"
    gpus = factory.LazyFunction(
        lambda: [
            {"index": 0, "name": "NVIDIA H100", "memory_mib": 81559, "compute_capability": "9.0"}
        ]
    )
    driver_version = "550.54.15"
    max_cuda = "12.4"


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Run"

    trigger = "manual"
    trigger_detail = "requested in a test"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Job"

    run = factory.SubFactory(RunFactory)
    kind = "test"
    build = factory.SubFactory(BuildFactory, channel__label="")
    torch_release = factory.SubFactory(TorchReleaseFactory)
    variant = factory.SubFactory(VariantFactory)
    platform = factory.SubFactory(PlatformFactory)
    queue_name = factory.LazyAttribute(lambda o: f"test.{o.platform.subdir}.{o.variant.name}")


class CellResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.CellResult"

    build = factory.SubFactory(BuildFactory, channel__label="")
    package = factory.SubFactory(PackageFactory)
    torch_release = factory.SubFactory(TorchReleaseFactory)
    variant = factory.SubFactory(VariantFactory)
    platform = factory.SubFactory(PlatformFactory)
    verdict = "passed"


class WaiverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Waiver"

    build = factory.SubFactory(BuildFactory, channel__label="")
    policy = "license"
    reason = "Accepted by the release manager"


class PromotionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Promotion"

    backend = "local"
    source_channel = factory.SubFactory(ChannelFactory, label="")
    # Not role=target: the database allows one target channel, and tests make many promotions.
    target_channel = factory.SubFactory(ChannelFactory, label="")
    idempotency_key = factory.Sequence(lambda n: f"promotion-{n}")


class PromotionItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.PromotionItem"

    promotion = factory.SubFactory(PromotionFactory)
    build = factory.SubFactory(BuildFactory, channel__label="")


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.Notification"

    maintainer = factory.SubFactory(MaintainerFactory)
    kind = "own_failure"
    root_cause_key = factory.Sequence(lambda n: f"build:{n}")
    subject = "Your package failed"
    body = "See the matrix."


class ProposalNoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "packages_app.ProposalNote"

    proposal = factory.SubFactory(ProposalFactory)
    author_name = "reviewer"
    kind = "note"
    body = "Looks good so far."


# --- release impact, lifecycle events, maintainer claims, notice issues (issue 8) -------------


class ReleaseImpactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.ReleaseImpact"

    torch_release = factory.SubFactory(TorchReleaseFactory)
    package = factory.SubFactory(PackageFactory)
    category = "excludes"
    version = "1.0.0"
    specs = "pytorch >=2.4,<2.6"
    computed_at = factory.LazyFunction(timezone.now)


class PackageStatusEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.PackageStatusEvent"

    package = factory.SubFactory(PackageFactory)
    from_status = "active"
    to_status = "at_risk"
    reason = "No passing build for the newest supported PyTorch."
    created_at = factory.LazyFunction(timezone.now)


class MaintainerClaimFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.MaintainerClaim"

    package = factory.SubFactory(PackageFactory)
    name = factory.Sequence(lambda n: f"Claimant {n}")
    email = factory.Sequence(lambda n: f"claimant{n}@example.org")
    rationale = "I use it every day."


class PackageNoticeIssueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.PackageNoticeIssue"

    package = factory.SubFactory(PackageFactory)
    issue_url = factory.Sequence(lambda n: f"https://github.com/org/repo/issues/{n + 1}")


class SetPartnerSolveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.SetPartnerSolve"

    build = factory.SubFactory(BuildFactory, channel__label="")
    subdir = "linux-64"
    candidates_digest = factory.Sequence(lambda n: f"{n:064x}")
    state = "done"
    alone_ok = False
    with_staged_ok = True


class InstallabilityCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "testing_app.InstallabilityCheck"

    kind = "gate"
    build = factory.SubFactory(BuildFactory, channel__label="")
    subject_key = factory.LazyAttribute(lambda o: f"build:{o.build.pk}")
    build_ids = factory.LazyAttribute(lambda o: [o.build.pk])
    # Not role=target: the database allows one target channel.
    target_channel = factory.SubFactory(ChannelFactory, label="")
    subdir = "linux-64"
    label = "alone"
    state = "done"
    ok = True
