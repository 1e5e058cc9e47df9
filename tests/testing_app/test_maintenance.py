"""The maintenance policy on a frozen clock: active -> at_risk -> deprecated -> removed, each step
told once and undone by a passing build; the maintainer-needed marker and the claim flow."""

import datetime as dt

import pytest
import responses
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from testing_app.adapters.local_channel import reindex
from testing_app.models import MaintainerClaim
from testing_app.models import Notification
from testing_app.models import PackageStatusEvent
from testing_app.models import Verdict
from testing_app.services.claims import decide_claim
from testing_app.services.claims import submit_claim
from testing_app.services.maintenance import apply_maintenance_policy
from testing_app.services.maintenance import reinstate_package
from testing_app.services.maintenance import remove_package
from tests import factories
from tests.testing_app.notice_helpers import drain
from tests.testing_app.notice_helpers import drain_default_queue
from tests.testing_app.notice_helpers import failed_jobs
from tests.testing_app.notice_helpers import finish
from tests.testing_app.packages import build_package

Status = Package.Status
Kind = Notification.Kind
RELEASED = dt.date(2025, 1, 29)


def at(day: dt.date, hour: int = 12):
    """Freeze the clock (timezone.now() included) at noon UTC of `day`."""
    return time_machine.travel(
        dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC), tick=False
    )


def days(n: int) -> dt.date:
    return RELEASED + dt.timedelta(days=n)


@pytest.fixture
def world(db, tmp_path):
    """PyTorch 2.6.0 (newest supported, released 2025-01-29), an older one, and kornia with two
    maintainers and one build in staging plus its promoted copy in a file:// target channel."""
    newest = factories.TorchReleaseFactory(version="2.6.0", released_on=RELEASED, supported=True)
    factories.TorchReleaseFactory(version="2.5.1", released_on=dt.date(2024, 10, 29))
    factories.TorchReleaseFactory(version="2.7.0rc1", kind="rc", released_on=days(60))
    package = factories.PackageFactory(name="kornia")
    package.maintainers.add(factories.MaintainerFactory(name="Ada"), factories.MaintainerFactory())
    build = factories.BuildFactory(
        name="kornia", package=package, version="0.7.3", depends=["pytorch >=2.5,<2.8"]
    )
    root = tmp_path / "target"
    path = build_package(root, name="kornia", version="0.7.2", build="py_0")
    reindex(root, subdirs=["noarch"])
    target = Channel.objects.create(name="distro", url=root.as_uri(), role="target")
    promoted = factories.BuildFactory(
        name="kornia",
        package=package,
        channel=target,
        version="0.7.2",
        subdir="noarch",
        filename=path.name,
        state=Build.State.PROMOTED,
    )
    cell = {
        "torch_release": newest,
        "variant": factories.VariantFactory(name="cpu"),
        "platform": factories.PlatformFactory(subdir="linux-64"),
    }
    return {"package": package, "build": build, "promoted": promoted, "cell": cell, "root": root}


def _status(package) -> str:
    package.refresh_from_db()
    return package.status


def _notices(kind) -> int:
    return Notification.objects.filter(kind=kind).count()


def test_timeline_from_active_to_removed_on_a_frozen_clock(
    world, settings, django_capture_on_commit_callbacks
):
    package = world["package"]
    with at(days(29)):  # inside the grace period: nothing happens
        assert apply_maintenance_policy().at_risk == []
    assert _status(package) == Status.ACTIVE
    with at(days(30)):
        report = apply_maintenance_policy()
        assert (report.release, report.at_risk) == ("2.6.0", ["kornia"])
        apply_maintenance_policy()  # the next hourly run: same state, nothing new
    assert _status(package) == Status.AT_RISK
    assert package.status_changed_at == dt.datetime(2025, 2, 28, 12, tzinfo=dt.UTC)
    assert _notices(Kind.AT_RISK) == 2  # one per maintainer, once
    notice = Notification.objects.filter(kind=Kind.AT_RISK).first()
    assert "It will be deprecated (no further promotions) on 2025-03-30." in notice.body
    with at(days(59)):
        assert apply_maintenance_policy().deprecated == []
    with at(days(60)):
        assert apply_maintenance_policy().deprecated == ["kornia"]
    assert _status(package) == Status.DEPRECATED
    assert _notices(Kind.DEPRECATED) == 2
    with at(days(400)):
        apply_maintenance_policy()  # removal is never automatic
    assert _status(package) == Status.DEPRECATED
    manager = factories.UserFactory()
    with pytest.raises(ValidationError, match="Say why"):
        remove_package(package=package, by=manager, reason=" ")
    with django_capture_on_commit_callbacks(execute=True):
        remove_package(package=package, by=manager, reason="Unmaintained since PyTorch 2.6.")
    assert _status(package) == Status.REMOVED
    repodata = world["root"] / "noarch" / "repodata.json"
    assert world["promoted"].filename in repodata.read_text()
    assert drain("promote") == 1  # the removal job: files out of the target, re-indexed
    assert not (world["root"] / "noarch" / world["promoted"].filename).exists()
    assert world["promoted"].filename not in repodata.read_text()
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.WITHDRAWN
    removal = PackageStatusEvent.objects.get(to_status="removed")
    assert removal.reason.endswith("1 file(s) removed from the target channel.")
    world["build"].refresh_from_db()
    assert world["build"].state == Build.State.STAGED  # staging keeps its builds
    assert _notices(Kind.REMOVAL) == 2
    steps = list(
        PackageStatusEvent.objects.order_by("created_at", "id").values_list(
            "from_status", "to_status"
        )
    )
    assert steps == [("active", "at_risk"), ("at_risk", "deprecated"), ("deprecated", "removed")]


def test_grace_period_is_configurable(world, settings):
    settings.MAINTENANCE_GRACE_DAYS = 10
    with at(days(10)):
        assert apply_maintenance_policy().at_risk == ["kornia"]


def test_passing_build_keeps_a_package_active_and_pytorch_itself_is_exempt(world):
    finish(world["build"], world["cell"], Verdict.PASSED)
    factories.PackageFactory(name="pytorch")
    with at(days(90)):
        report = apply_maintenance_policy()
    assert report.at_risk == []
    assert _status(world["package"]) == Status.ACTIVE
    assert Package.objects.get(name="pytorch").status == Status.ACTIVE


def test_a_package_without_a_pytorch_dependency_is_never_at_risk(world, client):
    faiss = factories.PackageFactory(name="faiss-cpu")
    factories.BuildFactory(name="faiss-cpu", package=faiss, depends=["numpy >=1.25", "libfaiss"])
    with at(days(90)):
        report = apply_maintenance_policy()
        content = client.get("/maintenance/").content.decode()
    assert report.at_risk == ["kornia"]
    assert _status(faiss) == Status.ACTIVE
    timeline = content.split('id="timeline"')[1].split("</section>")[0]
    assert "kornia" in timeline
    assert "faiss-cpu" not in timeline
    assert "one without a PyTorch dependency is never at risk" in content
    assert "faiss-cpu" in content.split('id="not-measured"')[1]


def test_a_failing_cell_beside_a_passing_one_is_no_passing_build(world):
    other_cell = {**world["cell"], "variant": factories.VariantFactory(name="cuda12.4")}
    finish(world["build"], world["cell"], Verdict.PASSED)
    finish(world["build"], other_cell, Verdict.FAILED)
    with at(days(30)):
        assert apply_maintenance_policy().at_risk == ["kornia"]


def test_passing_build_reinstates_at_once_and_a_new_episode_is_told_again(world):
    package = world["package"]
    with at(days(30)):
        apply_maintenance_policy()
    assert _status(package) == Status.AT_RISK
    with at(days(35)):
        finish(world["build"], world["cell"], Verdict.PASSED)  # finish_job reinstates it
    assert _status(package) == Status.ACTIVE
    assert _notices(Kind.REINSTATED) == 2
    event = PackageStatusEvent.objects.order_by("-id").first()
    assert (event.to_status, event.reason) == ("active", "A build passes with PyTorch 2.6.0.")
    # A new build that fails everywhere, later: a new episode, told again.
    new_build = factories.BuildFactory(name="kornia", package=package, version="0.8.0")
    with at(days(40)):
        finish(new_build, world["cell"], Verdict.FAILED)
        apply_maintenance_policy()
    # The old build still passes: kornia has a passing build and stays active.
    assert _status(package) == Status.ACTIVE
    with at(days(41)):
        finish(world["build"], world["cell"], Verdict.FAILED)  # a re-test of the old build fails
        apply_maintenance_policy()
    assert _status(package) == Status.AT_RISK
    assert _notices(Kind.AT_RISK) == 4  # two episodes x two maintainers


def test_deprecated_package_is_reinstated_by_the_periodic_job_too(world):
    with at(days(30)):
        apply_maintenance_policy()
    with at(days(60)):
        apply_maintenance_policy()
    assert _status(world["package"]) == Status.DEPRECATED
    # The cell passes by a job whose hook we bypass: only the periodic job sees it.
    factories.CellResultFactory(
        build=world["build"], package=world["package"], verdict=Verdict.PASSED, **world["cell"]
    )
    with at(days(61)):
        assert apply_maintenance_policy().reinstated == ["kornia"]
    assert _status(world["package"]) == Status.ACTIVE


def test_removed_package_is_reinstated_by_a_release_manager_once_it_passes(world):
    package = world["package"]
    with at(days(30)):
        apply_maintenance_policy()
    with at(days(60)):
        apply_maintenance_policy()
    remove_package(package=package, by=None, reason="Unmaintained.")
    with pytest.raises(ValidationError, match="no passing build for PyTorch 2.6.0"):
        reinstate_package(package=package, by=None)
    finish(world["build"], world["cell"], Verdict.PASSED)
    assert _status(package) == Status.REMOVED  # removal is undone by a person, not by a job
    reinstate_package(package=package, by=factories.UserFactory())
    assert _status(package) == Status.ACTIVE
    assert _notices(Kind.REINSTATED) == 2


def test_remove_needs_deprecated_and_the_release_manager_permission(world, client):
    package = world["package"]
    with pytest.raises(ValidationError, match="only a deprecated package"):
        remove_package(package=package, by=None, reason="x")
    user = factories.UserFactory()
    client.force_login(user)
    assert client.post("/maintenance/kornia/remove/", {"reason": "x"}).status_code == 403
    user.groups.add(Group.objects.get(name="release managers"))
    response = client.post("/maintenance/kornia/remove/", {"reason": "x"})
    assert response.status_code == 302
    assert _status(package) == Status.ACTIVE  # refused with a message: not deprecated
    page = client.get("/maintenance/").content.decode()
    assert "only a deprecated package can be removed" in page


def test_package_page_shows_the_timeline_and_next_step(world, client):
    with at(days(30)):
        apply_maintenance_policy()
    content = client.get("/packages/kornia/").content.decode()
    assert 'id="lifecycle"' in content
    assert "It will be deprecated (no further promotions) on 2025-03-30." in content
    assert "No passing build for PyTorch 2.6.0 30 days after its release (2025-01-29)." in content


# --- maintainer-needed and claims --------------------------------------------------------


@pytest.fixture
def orphan(db):
    return factories.PackageFactory(name="torchcsprng")


def test_package_without_maintainer_shows_maintainer_needed_publicly(orphan, client):
    content = client.get("/packages/torchcsprng/").content.decode()
    assert "maintainer-needed" in content
    assert "/packages/torchcsprng/claim/" in content
    listing = client.get("/packages/").content.decode()
    assert 'class="maintainer-needed" href="/packages/torchcsprng/claim/"' in listing
    maintained = factories.PackageFactory(name="kornia")
    maintained.maintainers.add(factories.MaintainerFactory())
    assert "maintainer-needed" not in client.get("/packages/kornia/").content.decode()
    assert "torchcsprng" in client.get("/maintenance/").content.decode()


def test_claim_is_reviewed_like_a_proposal(orphan, client, django_capture_on_commit_callbacks):
    response = client.post(
        "/packages/torchcsprng/claim/",
        {
            "name": "Alan",
            "email": "Alan@Example.org",
            "github_handle": "@alan",
            "rationale": "I build it at work every week.",
            "website": "",
        },
    )
    assert response.status_code == 302
    claim = MaintainerClaim.objects.get()
    assert (claim.email, claim.github_handle, claim.state) == (
        "alan@example.org",
        "alan",
        "submitted",
    )
    assert "1 offer waiting for review" in client.get("/packages/torchcsprng/").content.decode()
    # Only reviewers see the queue.
    assert client.get("/review/claims/").status_code == 302
    reviewer = factories.UserFactory()
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    client.force_login(reviewer)
    assert "torchcsprng" in client.get("/review/claims/").content.decode()
    empty_note = client.post(f"/review/claims/{claim.pk}/", {"decision": "approve", "note": ""})
    assert empty_note.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        decided = client.post(
            f"/review/claims/{claim.pk}/", {"decision": "approve", "note": "Welcome aboard."}
        )
    assert decided.status_code == 302
    assert [m.email for m in orphan.maintainers.all()] == ["alan@example.org"]
    assert drain_default_queue() == 1
    (email,) = mail.outbox
    assert email.to == ["alan@example.org"]
    assert "approved" in email.subject
    assert "Welcome aboard." in email.body
    claim.refresh_from_db()
    assert claim.emailed_at is not None
    with pytest.raises(ValidationError, match="already approved"):
        decide_claim(claim=claim, reviewer=reviewer, approve=False, note="No.")
    assert "maintainer-needed" not in client.get("/packages/torchcsprng/").content.decode()


def test_claim_rules_maintained_package_duplicate_rate_limit_and_rejection(orphan, settings):
    args = {"name": "Alan", "github_handle": "", "rationale": "r", "client_fingerprint": "fp"}
    claim = submit_claim(package=orphan, email="alan@example.org", **args)
    with pytest.raises(ValidationError, match="already have a claim"):
        submit_claim(package=orphan, email="alan@example.org", **args)
    settings.CLAIM_RATE_LIMIT_PER_HOUR = 2
    from testing_app.services.claims import ClaimRateLimited

    submit_claim(package=orphan, email="bob@example.org", **args)
    with pytest.raises(ClaimRateLimited):
        submit_claim(package=orphan, email="carol@example.org", **args)
    decide_claim(claim=claim, reviewer=factories.UserFactory(), approve=False, note="Not now.")
    claim.refresh_from_db()
    assert claim.state == "rejected"
    assert orphan.maintainers.count() == 0
    maintained = factories.PackageFactory(name="kornia")
    maintained.maintainers.add(factories.MaintainerFactory())
    with pytest.raises(ValidationError, match="has maintainers"):
        submit_claim(
            package=maintained, email="dan@example.org", **{**args, "client_fingerprint": "x"}
        )


def test_removal_from_a_target_it_cannot_change_is_recorded(
    world, settings, django_capture_on_commit_callbacks
):
    settings.PROMOTION_BACKEND = "local"  # forced local, but the target is not a directory
    Channel.objects.filter(role="target").update(url="https://conda.example.org/distro")
    Package.objects.filter(pk=world["package"].pk).update(status=Status.DEPRECATED)
    with django_capture_on_commit_callbacks(execute=True):
        remove_package(package=world["package"], by=None, reason="Gone.")
    assert drain("promote") == 1
    (job,) = failed_jobs("promote")
    assert "is not a file:// channel" in job.latest_result().exc_string
    removal = PackageStatusEvent.objects.get(to_status="removed")
    assert "Removal from the target channel failed: https://conda.example.org/distro" in (
        removal.reason
    )
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.PROMOTED  # nothing pretends it is gone


API = "https://api.anaconda.example"
TOKEN = "SECRET-anaconda-token-42"  # noqa: S105 - a test value, checked to never leak


@pytest.fixture
def on_anaconda(world, settings):
    """The target is the anaconda.org owner `distro`, label `main` (backend "auto" picks it)."""
    settings.ANACONDA_API_URL = API
    settings.ANACONDA_API_TOKEN = TOKEN
    Channel.objects.filter(role="target").update(url="https://conda.anaconda.example/distro")
    Package.objects.filter(pk=world["package"].pk).update(status=Status.DEPRECATED)
    promoted = world["promoted"]
    with responses.RequestsMock() as http:
        yield {
            "http": http,
            "url": f"{API}/channels/distro/main",
            "body": {
                "package": "kornia",
                "version": "0.7.2",
                "basename": f"noarch/{promoted.filename}",
            },
        }


def _remove_through_the_promote_queue(world, capture) -> PackageStatusEvent:
    with capture(execute=True):
        remove_package(package=world["package"], by=None, reason="Unmaintained.")
    assert drain("promote") == 1
    return PackageStatusEvent.objects.get(to_status="removed")


def _label_removal(on_anaconda, status: int, **reply):
    on_anaconda["http"].add(
        responses.DELETE,
        on_anaconda["url"],
        status=status,
        match=[responses.matchers.json_params_matcher(on_anaconda["body"])],
        **reply,
    )


def test_removal_from_anaconda_takes_each_file_off_the_target_label(
    world, on_anaconda, django_capture_on_commit_callbacks
):
    _label_removal(on_anaconda, 201)
    removal = _remove_through_the_promote_queue(world, django_capture_on_commit_callbacks)
    assert failed_jobs("promote") == []
    (call,) = on_anaconda["http"].calls
    assert call.request.headers["Authorization"] == f"token {TOKEN}"
    assert "1 file(s) removed from the target channel." in removal.reason
    assert "removed from distro/label/main" in removal.reason
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.WITHDRAWN
    assert TOKEN not in removal.reason


def test_removal_from_anaconda_counts_a_file_already_off_the_label_as_done(
    world, on_anaconda, django_capture_on_commit_callbacks
):
    _label_removal(on_anaconda, 404, json={"error": "not found"})
    removal = _remove_through_the_promote_queue(world, django_capture_on_commit_callbacks)
    assert failed_jobs("promote") == []
    assert "was not under distro/label/main (404)" in removal.reason
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.WITHDRAWN


def test_removal_from_anaconda_reports_a_server_error_and_withdraws_nothing(
    world, on_anaconda, django_capture_on_commit_callbacks, caplog
):
    _label_removal(on_anaconda, 500, json={"error": "database unavailable"})
    removal = _remove_through_the_promote_queue(world, django_capture_on_commit_callbacks)
    (job,) = failed_jobs("promote")
    assert "server error (500)" in job.latest_result().exc_string
    assert "Removal from the target channel failed: server: server error (500)" in removal.reason
    assert "database unavailable" in removal.reason
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.PROMOTED
    assert TOKEN not in removal.reason + job.latest_result().exc_string + caplog.text


def test_removal_from_anaconda_with_a_refused_token_says_so(
    world, on_anaconda, django_capture_on_commit_callbacks
):
    _label_removal(on_anaconda, 401, json={"error": "token expired"})
    removal = _remove_through_the_promote_queue(world, django_capture_on_commit_callbacks)
    assert len(failed_jobs("promote")) == 1
    assert "Removal from the target channel failed: unauthorized: unauthorized (401)" in (
        removal.reason
    )
    world["promoted"].refresh_from_db()
    assert world["promoted"].state == Build.State.PROMOTED
