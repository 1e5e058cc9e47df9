"""Admin pages for every model: they answer, filter and search, and their query count is bounded."""

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from packages_app.admin.base import EstimatedCountPaginator
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import PackageToken
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.models import SubdirRevision
from packages_app.models import TorchRelease
from packages_app.models import TrustedPublisher
from packages_app.models import UsedPublishingToken
from testing_app.models import CellResult
from testing_app.models import EnrollmentToken
from testing_app.models import Host
from testing_app.models import InstallabilityCheck
from testing_app.models import Job
from testing_app.models import JobDayCount
from testing_app.models import MaintainerClaim
from testing_app.models import Notification
from testing_app.models import PackageNoticeIssue
from testing_app.models import PackageStatusEvent
from testing_app.models import PackageVerdictCount
from testing_app.models import PinnedCellResult
from testing_app.models import Platform
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.models import ReleaseImpact
from testing_app.models import Run
from testing_app.models import SetPartnerSolve
from testing_app.models import Variant
from testing_app.models import Waiver
from testing_app.models import WorkerProcess
from tests import factories

pytestmark = pytest.mark.django_db

FEW, MANY = 3, 30


def _maintainers(n: int) -> list:
    return [factories.MaintainerFactory(user=factories.UserFactory()) for _ in range(n)]


def _packages(n: int) -> list:
    packages = []
    for _ in range(n):
        package = factories.PackageFactory(license="MIT")
        package.maintainers.set(_maintainers(2))
        factories.PackageTokenFactory(package=package)
        packages.append(package)
    return packages


def _package_tokens(n: int) -> list:
    return [
        factories.PackageTokenFactory(
            created_by=factories.MaintainerFactory(), last_used_at=timezone.now()
        )
        for _ in range(n)
    ]


def _trusted_publishers(n: int) -> list:
    return [
        TrustedPublisher.objects.create(
            package=factories.PackageFactory(),
            repository=f"owner-{i}/repo",
            workflow="release.yml",
            environment="release" if i % 2 else "",
            created_by=factories.MaintainerFactory(),
            last_used_at=timezone.now(),
        )
        for i in range(n)
    ]


def _used_publishing_tokens(n: int) -> list:
    return [
        UsedPublishingToken.objects.create(
            jti=uuid.uuid4().hex, expires_at=timezone.now() + timedelta(minutes=5)
        )
        for _ in range(n)
    ]


def _proposals(n: int) -> list:
    return [
        factories.ProposalFactory(
            state=Proposal.State.APPROVED,
            reviewed_by=factories.UserFactory(),
            reviewed_at=timezone.now(),
            package=factories.PackageFactory(),
            precheck_results=[{"check": "test section", "outcome": "pass", "detail": "ok"}],
        )
        for _ in range(n)
    ]


def _proposal_notes(n: int) -> list:
    return [
        factories.ProposalNoteFactory(
            kind="decision", decision="approve", author=factories.UserFactory()
        )
        for _ in range(n)
    ]


def _channels(n: int) -> list:
    return [
        factories.ChannelFactory(
            label="", last_synced_at=timezone.now(), last_sync_error="boom" * (i % 2)
        )
        for i in range(n)
    ]


def _builds(n: int) -> list:
    return [
        factories.BuildFactory(channel__label="", package=factories.PackageFactory(), size=1024)
        for _ in range(n)
    ]


def _torch_releases(n: int) -> list:
    releases = []
    for i in range(n):
        release = factories.TorchReleaseFactory(released_on=timezone.localdate())
        release.variants.set([factories.VariantFactory(name=f"cuda12.{i}", kind="cuda")])
        release.platforms.set([factories.PlatformFactory()])
        releases.append(release)
    return releases


def _variants(n: int) -> list:
    return [factories.VariantFactory(name=f"rocm6.{i}", kind="rocm") for i in range(n)]


def _platforms(n: int) -> list:
    return [factories.PlatformFactory(subdir=f"linux-arch{i}") for i in range(n)]


def _enrollment_tokens(n: int) -> list:
    return [factories.EnrollmentTokenFactory(created_by=factories.UserFactory()) for _ in range(n)]


def _axes(i: int) -> dict:
    """Alternate two variants and two platforms, so that related filters have choices to offer."""
    return {
        "variant": factories.VariantFactory(name=("cpu", "cuda12.4")[i % 2]),
        "platform": factories.PlatformFactory(subdir=("linux-64", "linux-aarch64")[i % 2]),
    }


def _hosts(n: int) -> list:
    return [
        factories.HostFactory(
            platform=_axes(i)["platform"],
            enrollment_token=factories.EnrollmentTokenFactory(),
            approved_by=factories.UserFactory(),
            last_heartbeat_at=timezone.now(),
            max_cuda=("12.4", "12.8")[i % 2],
        )
        for i in range(n)
    ]


def _worker_processes(n: int) -> list:
    return [
        WorkerProcess.objects.create(
            host=host, name=f"{host.name}.gpu0.{i}", gpu_index=0, last_heartbeat_at=timezone.now()
        )
        for i, host in enumerate(_hosts(n))
    ]


def _runs(n: int) -> list:
    runs = []
    for _ in range(n):
        run = factories.RunFactory(
            triggered_by=factories.UserFactory(),
            trigger_build=factories.BuildFactory(channel__label=""),
            torch_release=factories.TorchReleaseFactory(),
        )
        factories.JobFactory(run=run)
        factories.JobFactory(run=run, status="finished", verdict="failed")
        runs.append(run)
    return runs


def _jobs(n: int) -> list:
    return [
        factories.JobFactory(
            host=factories.HostFactory(),
            status="finished",
            verdict="passed",
            finished_at=timezone.now(),
            duration_s=12.5,
            log_tail="TESTS PASSED",
            **_axes(i),
        )
        for i in range(n)
    ]


def _cell_results(n: int) -> list:
    return [
        factories.CellResultFactory(latest_job=factories.JobFactory(), **_axes(i)) for i in range(n)
    ]


def _pinned_cell_results(n: int) -> list:
    return [
        PinnedCellResult.objects.create(
            build=factories.BuildFactory(channel__label=""),
            pinned_build=factories.BuildFactory(channel__label=""),
            package=factories.PackageFactory(),
            torch_release=factories.TorchReleaseFactory(),
            latest_job=factories.JobFactory(),
            verdict="passed",
            **_axes(i),
        )
        for i in range(n)
    ]


def _waivers(n: int) -> list:
    waivers = []
    for i in range(n):
        cell = {}
        if i % 2:
            cell = {
                "policy": "",
                "torch_release": factories.TorchReleaseFactory(),
                "variant": factories.VariantFactory(),
                "platform": factories.PlatformFactory(),
            }
        waivers.append(factories.WaiverFactory(created_by=factories.UserFactory(), **cell))
    return waivers


def _promotions(n: int) -> list:
    promotions = []
    for _ in range(n):
        promotion = factories.PromotionFactory(requested_by=factories.UserFactory())
        factories.PromotionItemFactory.create_batch(2, promotion=promotion)
        promotions.append(promotion)
    return promotions


def _promotion_items(n: int) -> list:
    return factories.PromotionItemFactory.create_batch(n)


def _installability_checks(n: int) -> list:
    return factories.InstallabilityCheckFactory.create_batch(
        n, promotion=factories.PromotionFactory(), requested_by=factories.UserFactory()
    )


def _set_partner_solves(n: int) -> list:
    return factories.SetPartnerSolveFactory.create_batch(n)


def _package_verdict_counts(n: int) -> list:
    """Rows the triggers write: one per new cell's (package, version, release, verdict)."""
    cells = factories.CellResultFactory.create_batch(n)
    return list(PackageVerdictCount.objects.filter(package__in=[c.package_id for c in cells]))


def _subdir_revisions(n: int) -> list:
    """Rows the triggers write: one per (channel, subdir) whose builds a statement changed."""
    builds = factories.BuildFactory.create_batch(n)
    return list(SubdirRevision.objects.filter(channel__in=[b.channel_id for b in builds]))


def _job_day_counts(n: int) -> list:
    """Rows the triggers write: one per finished job's (day, host, kind, verdict)."""
    jobs = [
        factories.JobFactory(
            host=factories.HostFactory(), status="finished", verdict="passed",
            finished_at=timezone.now(),
        )
        for _ in range(n)
    ]  # fmt: skip
    return list(JobDayCount.objects.filter(host__in=[job.host_id for job in jobs]))


def _notifications(n: int) -> list:
    return [
        factories.NotificationFactory(
            package=factories.PackageFactory(), build=factories.BuildFactory(channel__label="")
        )
        for _ in range(n)
    ]


def _release_impacts(n: int) -> list:
    categories = ["admits", "excludes", "unbounded"]
    return [factories.ReleaseImpactFactory(category=categories[i % 3]) for i in range(n)]


def _status_events(n: int) -> list:
    steps = [("active", "at_risk"), ("at_risk", "deprecated"), ("deprecated", "removed")]
    return [
        factories.PackageStatusEventFactory(
            from_status=steps[i % 3][0], to_status=steps[i % 3][1], by=factories.UserFactory()
        )
        for i in range(n)
    ]


def _maintainer_claims(n: int) -> list:
    states = ["submitted", "approved", "rejected"]
    return [
        factories.MaintainerClaimFactory(state=states[i % 3], reviewed_by=factories.UserFactory())
        for i in range(n)
    ]


def _notice_issues(n: int) -> list:
    return factories.PackageNoticeIssueFactory.create_batch(n)


MAKERS: dict[type, Callable[[int], list]] = {
    Maintainer: _maintainers,
    Package: _packages,
    PackageToken: _package_tokens,
    TrustedPublisher: _trusted_publishers,
    UsedPublishingToken: _used_publishing_tokens,
    Proposal: _proposals,
    ProposalNote: _proposal_notes,
    Channel: _channels,
    Build: _builds,
    TorchRelease: _torch_releases,
    Variant: _variants,
    Platform: _platforms,
    EnrollmentToken: _enrollment_tokens,
    Host: _hosts,
    WorkerProcess: _worker_processes,
    Run: _runs,
    Job: _jobs,
    CellResult: _cell_results,
    PinnedCellResult: _pinned_cell_results,
    Waiver: _waivers,
    Promotion: _promotions,
    PromotionItem: _promotion_items,
    InstallabilityCheck: _installability_checks,
    SetPartnerSolve: _set_partner_solves,
    PackageVerdictCount: _package_verdict_counts,
    JobDayCount: _job_day_counts,
    SubdirRevision: _subdir_revisions,
    Notification: _notifications,
    ReleaseImpact: _release_impacts,
    PackageStatusEvent: _status_events,
    MaintainerClaim: _maintainer_claims,
    PackageNoticeIssue: _notice_issues,
}
# Package tokens are issued by a service that shows the secret once; the admin only lists them
# (enrollment tokens are added through the same kind of service, from the admin's add form).
# Proposal notes are an audit trail written by the review pages; worker rows by the workers.
# Lifecycle events are taken (and notified) by the maintenance service only. Used OIDC token
# ids are written by the API alone (trusted publishing). Solver rows are written by their jobs,
# and the rollup counts and subdir revisions by database triggers.
NO_ADD = {
    PackageToken,
    UsedPublishingToken,
    ProposalNote,
    WorkerProcess,
    PackageStatusEvent,
    InstallabilityCheck,
    SetPartnerSolve,
    PackageVerdictCount,
    JobDayCount,
    SubdirRevision,
}
MODELS = pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _changelist_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_admin_registers_every_model_of_both_apps():
    ours = set(apps.get_app_config("packages_app").get_models())
    ours |= set(apps.get_app_config("testing_app").get_models())
    assert ours <= set(admin.site._registry)
    assert ours == set(MAKERS)


@MODELS
def test_changelist_query_count_does_not_grow_with_rows(admin_client, model):
    url = _url(model, "changelist")
    MAKERS[model](FEW)
    admin_client.get(url)  # warm per-process caches (content types, site)
    few = _changelist_queries(admin_client, url)
    MAKERS[model](MANY - FEW)
    many = _changelist_queries(admin_client, url)
    assert many == few
    assert few <= 15


@MODELS
def test_changelist_search_and_every_filter_answer(admin_client, model):
    MAKERS[model](FEW)
    url = _url(model, "changelist")
    assert admin_client.get(url, {"q": "x"}).status_code == 200
    response = admin_client.get(url)
    assert response.status_code == 200
    specs = response.context["cl"].filter_specs
    assert len(specs) == len(admin.site._registry[model].list_filter)
    for spec in specs:
        choices = list(spec.choices(response.context["cl"]))
        # The first choice is "All"; every other one must be a valid lookup (200, not ?e=1).
        assert len(choices) > 1, spec.title
        for choice in choices[1:]:
            filtered = admin_client.get(url + choice["query_string"])
            assert filtered.status_code == 200, (spec.title, choice["query_string"])
    hierarchy = admin.site._registry[model].date_hierarchy
    if hierarchy:
        year = timezone.now().year
        assert admin_client.get(url, {f"{hierarchy}__year": year}).status_code == 200


@MODELS
def test_add_page_answers_except_for_tokens(admin_client, model):
    response = admin_client.get(_url(model, "add"))
    assert response.status_code == (403 if model in NO_ADD else 200)


@MODELS
def test_change_page_answers(admin_client, model):
    obj = MAKERS[model](1)[0]
    assert admin_client.get(_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", [Job, Build, Run, CellResult], ids=lambda m: m.__name__)
def test_large_table_numeric_search_finds_that_id_only(admin_client, model):
    rows = MAKERS[model](FEW)
    response = admin_client.get(_url(model, "changelist"), {"q": str(rows[1].pk)})
    assert [obj.pk for obj in response.context["cl"].result_list] == [rows[1].pk]


@pytest.mark.parametrize(
    ("factory", "model"),
    [
        (factories.PackageTokenFactory, PackageToken),
        (factories.EnrollmentTokenFactory, EnrollmentToken),
    ],
    ids=["package-token", "enrollment-token"],
)
def test_token_hash_is_shown_as_a_short_prefix_only(admin_client, factory, model):
    token_hash = hashlib.sha256(b"the secret").hexdigest()
    token = factory(token_hash=token_hash)
    for url in (_url(model, "changelist"), _url(model, "change", token.pk)):
        content = admin_client.get(url).content.decode()
        assert token_hash[:8] in content
        assert token_hash[:9] not in content


def test_package_page_lists_tokens_by_prefix_only(admin_client):
    token = factories.PackageTokenFactory()
    content = admin_client.get(_url(Package, "change", token.package.pk)).content.decode()
    assert token.token_hash[:8] in content
    assert token.token_hash not in content


def test_capability_tokens_of_maintainers_and_proposals_are_not_shown_in_full(admin_client):
    maintainer = factories.MaintainerFactory()
    proposal = factories.ProposalFactory()
    for obj, secret in (
        (maintainer, maintainer.unsubscribe_token),
        (proposal, proposal.status_token_hash),
    ):
        content = admin_client.get(_url(type(obj), "change", obj.pk)).content.decode()
        assert secret[:8] in content
        assert secret not in content


def test_job_change_page_shows_machine_fields_read_only(admin_client):
    job = _jobs(1)[0]
    response = admin_client.get(_url(Job, "change", job.pk))
    form_fields = set(response.context["adminform"].form.fields)
    assert {"status", "verdict", "log_tail", "host", "exit_code"}.isdisjoint(form_fields)
    assert "<pre>TESTS PASSED</pre>" in response.content.decode()


def test_run_progress_counts_its_jobs(admin_client):
    _runs(1)
    content = admin_client.get(_url(Run, "changelist")).content.decode()
    assert "1 / 2 (1 need attention)" in content


def test_host_heartbeat_filter_splits_recent_and_silent(admin_client):
    recent = factories.HostFactory(last_heartbeat_at=timezone.now())
    silent = factories.HostFactory(last_heartbeat_at=timezone.now() - timedelta(days=1))
    url = _url(Host, "changelist")
    for value, expected in (("recent", recent), ("silent", silent)):
        result = admin_client.get(url, {"heartbeat": value}).context["cl"].result_list
        assert list(result) == [expected]


@pytest.mark.parametrize(
    ("model", "field"),
    [(Package, "maintainers"), (Build, "package"), (Notification, "maintainer")],
)
def test_autocomplete_fields_answer(admin_client, model, field):
    factories.PackageFactory(name="kornia")
    factories.MaintainerFactory(name="kornia team")
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": model._meta.app_label,
            "model_name": model._meta.model_name,
            "field_name": field,
            "term": "korn",
        },
    )
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_paginator_uses_the_planner_estimate_only_unfiltered_past_the_threshold(monkeypatch):
    _jobs(FEW)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
    _jobs(2)  # not yet in the planner's statistics
    exact = Job.objects.count()
    assert EstimatedCountPaginator(Job.objects.all(), 10).count == exact
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 0)
    assert EstimatedCountPaginator(Job.objects.all(), 10).count == FEW
    filtered = Job.objects.filter(verdict="passed")
    assert EstimatedCountPaginator(filtered, 10).count == exact
