"""Promotions end to end: the gate first, the set checked with the solver before copying, copies
retried with backoff, double submits, crashes and resumes, and what happens after."""

import threading
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from packages_app.models import Build
from packages_app.services.catalog import import_repodata
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import solve_environment
from testing_app.models import CellResult
from testing_app.models import InstallabilityCheck
from testing_app.models import Notification
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.promotions import suggest_set_for
from testing_app.selectors.promotions import suggest_sets
from testing_app.services.installability import request_missing_checks
from testing_app.services.promotion_backends import CopyDone
from testing_app.services.promotion_backends import CopyFailed
from testing_app.services.promotion_backends import LocalBackend
from testing_app.services.promotions import cancel_promotion
from testing_app.services.promotions import create_promotion
from testing_app.services.promotions import resume_promotion
from testing_app.services.promotions import run_promotion
from testing_app.services.set_solves import request_set_partner_solves
from tests import factories
from tests.testing_app.promotion_world import drain
from tests.testing_app.promotion_world import index_channel

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = pytest.mark.django_db


class Crash(BaseException):
    """Stands for the worker dying (SIGKILL): nothing after it runs, nothing is recorded."""


class ScriptedBackend:
    """Copies nothing; each build's calls answer from a script (an exception or a CopyDone)."""

    name = "local"

    def __init__(self, script=None):
        self.script = {name: list(outcomes) for name, outcomes in (script or {}).items()}
        self.calls = []

    def describe(self, build):
        return "here", "there"

    def publish(self, builds):
        """All or nothing, like the real backends: the first scripted failure stops the set."""
        done = []
        for build in builds:
            self.calls.append(build.name)
            outcomes = self.script.get(build.name, [])
            outcome = outcomes.pop(0) if outcomes else CopyDone(False, "copied")
            if isinstance(outcome, CopyFailed) and outcome.build_id is None:
                outcome.build_id = build.pk
            if isinstance(outcome, BaseException):
                raise outcome
            done.append(outcome)
        return done

    def candidate_channel(self, builds, scratch):
        return ""


def promotable(world, run_checks, name="kornia", **kw):
    build = world.stage(name, **kw)
    run_checks([build])
    assert get_build_gate(build.pk).promotable
    return build


def create(builds, user, key="key-1"):
    promotion, created = create_promotion(
        build_ids=[b.pk for b in builds], requested_by=user, idempotency_key=key
    )
    return promotion


def items(promotion):
    return list(promotion.items.order_by("pk").values_list("build__name", "state", "attempts"))


def test_promote_local_end_to_end(
    world, run_checks, release_manager, django_capture_on_commit_callbacks
):
    build = promotable(world, run_checks)
    with django_capture_on_commit_callbacks(execute=True):
        promotion = create([build], release_manager)
    assert promotion.state == "pending"
    drain("promote")
    promotion.refresh_from_db()
    assert promotion.state == "done", promotion.error_message
    item = promotion.items.get()
    assert (item.state, item.attempts) == ("done", 1)
    assert item.source == build.download_url
    assert item.destination == f"{world.target.base_url}/linux-64/{build.filename}"
    build.refresh_from_db()
    assert build.state == Build.State.PROMOTED
    # The file is in the target, indexed: a solver pointed at the target installs it.
    assert (world.target_dir / "linux-64" / build.filename).is_file()
    solved = solve_environment(
        channels=[world.target.base_url, world.upstream.base_url],
        platform="linux-64",
        specs=["kornia"],
        virtual_packages=["__unix=0", "__linux=5.15"],
    )
    assert solved.find("kornia").channel.rstrip("/") == world.target.base_url
    # Checked before copying, then the follow-ups.
    kinds = sorted(promotion.installability_checks.values_list("kind", "ok"))
    assert kinds == [("post", True), ("precopy", True), ("precopy", True)]
    assert [(s["step"], s["ok"]) for s in promotion.followups] == [
        ("re-sync the target channel", True),
        ("notify maintainers", True),
        ("check install sets", True),
    ]
    in_target = Build.objects.get(channel=world.target, filename=build.filename)
    assert in_target.state == Build.State.PROMOTED
    notice = Notification.objects.get(kind="promotion_done")
    assert notice.maintainer in build.package.maintainers.all()
    assert notice.root_cause_key == f"promotion:{promotion.pk}"
    post = promotion.installability_checks.get(kind="post")
    assert (post.label, post.specs) == ("pytorch @ pytorch 2.5.1", ["pytorch ==2.5.1"])


def test_create_promotion_refuses_a_build_that_is_not_promotable(world, release_manager):
    build = world.stage("kornia")  # never checked for installability: waiting
    with pytest.raises(ValidationError, match="Not promotable: Installable from the target"):
        create([build], release_manager)
    assert not Promotion.objects.exists()


def test_create_promotion_by_a_maintainer_is_denied(world, run_checks, maintainer_user):
    build = promotable(world, run_checks)
    build.package.maintainers.update(user=maintainer_user)
    with pytest.raises(PermissionDenied):
        create([build], maintainer_user)
    assert not Promotion.objects.exists()


def test_double_submit_creates_one_promotion_and_one_job(
    world, run_checks, release_manager, django_capture_on_commit_callbacks
):
    build = promotable(world, run_checks)
    with django_capture_on_commit_callbacks(execute=True):
        first, created_first = create_promotion(
            build_ids=[build.pk], requested_by=release_manager, idempotency_key="same"
        )
        second, created_second = create_promotion(
            build_ids=[build.pk], requested_by=release_manager, idempotency_key="same"
        )
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert Promotion.objects.count() == 1
    assert django_rq.get_queue("promote").count == 1


def test_a_build_in_an_open_promotion_cannot_join_another(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    create([build], release_manager, key="first")
    with pytest.raises(ValidationError, match="promotion #"):
        create([build], release_manager, key="second")


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submit_creates_one_promotion(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    barrier, outcomes = threading.Barrier(4), []

    def submit(key):
        try:
            barrier.wait()
            promotion, created = create_promotion(
                build_ids=[build.pk], requested_by=release_manager, idempotency_key=key
            )
            outcomes.append(("ok", key, promotion.pk, created))
        except ValidationError as exc:
            outcomes.append(("refused", key, " ".join(exc.messages), None))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(key,)) for key in ("a", "a", "a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Promotion.objects.count() == 1
    created = [o for o in outcomes if o[0] == "ok" and o[3]]
    assert len(created) == 1
    assert len({o[2] for o in outcomes if o[0] == "ok"}) == 1
    assert len(outcomes) == 4


def test_set_is_gated_as_a_whole_and_copied_together(
    json_lookup_modes, world, run_checks, release_manager, django_capture_on_commit_callbacks
):
    kornia = world.stage("kornia")
    fastai = world.stage("fastai", depends=("kornia ==1.0.0", "pytorch >=2.5,<2.6"))
    assert suggest_sets([kornia, fastai]) == []  # nothing solved yet
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=[kornia, fastai])
    with django_capture_on_commit_callbacks(execute=True):
        drain("install")  # the solves; the last one queues the set's checks
    drain("install")
    assert suggest_sets([kornia, fastai]) == [[fastai.pk, kornia.pk]]
    assert suggest_set_for(kornia) == suggest_set_for(fastai) == [fastai.pk, kornia.pk]
    run_checks([kornia])
    run_checks([fastai])
    # Alone, fastai cannot be installed from the target: its kornia is only staged.
    alone = get_build_gate(fastai.pk).policy("installability")
    assert alone.status == "fail"
    assert "kornia ==1.0.0" in alone.reason
    run_checks([kornia, fastai])
    with django_capture_on_commit_callbacks(execute=True):
        promotion = create([kornia, fastai], release_manager)
    drain("promote")
    promotion.refresh_from_db()
    assert promotion.state == "done", promotion.error_message
    assert sorted(p.name for p in (world.target_dir / "linux-64").glob("*.conda")) == sorted(
        [kornia.filename, fastai.filename]
    )


def test_precopy_check_failing_copies_nothing(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    # PyTorch vanishes from the channels the target relies on after the gate's check.
    upstream = Path(world.upstream.base_url.removeprefix("file://"))
    for package in upstream.glob("linux-64/pytorch-*.conda"):
        package.unlink()
    (upstream / "linux-64" / "repodata.json").unlink()
    index_channel(upstream)
    result = run_promotion(promotion_id=promotion.pk)
    assert result.state == "failed"
    assert "not installable from the target on linux-64" in result.error_message
    assert items(result) == [("kornia", "pending", 0)]
    assert not (world.target_dir / "linux-64" / build.filename).exists()


def test_gate_is_checked_again_when_the_job_runs(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    CellResult.objects.filter(build=build).update(verdict="failed")
    result = run_promotion(promotion_id=promotion.pk, backend=ScriptedBackend())
    assert result.state == "failed"
    assert result.error_message.startswith(
        "no longer promotable: Required cells passed: 1 of 1 required cells failed"
    )


def test_transient_failures_are_retried_with_backoff(world, run_checks, release_manager, settings):
    settings.PROMOTION_RETRY_BACKOFF_S = [1.5, 4]
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    backend = ScriptedBackend(
        {
            "kornia": [
                CopyFailed("server: 503", retryable=True),
                CopyFailed("network: reset", retryable=True),
            ]
        }
    )
    pauses = []
    result = run_promotion(promotion_id=promotion.pk, backend=backend, sleep=pauses.append)
    assert result.state == "done"
    assert pauses == [1.5, 4]
    assert items(result) == [("kornia", "done", 3)]


def test_retries_run_out_and_the_item_says_why(world, run_checks, release_manager, settings):
    settings.PROMOTION_RETRY_BACKOFF_S = [0]
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    backend = ScriptedBackend({"kornia": [CopyFailed("server: 502", retryable=True)] * 2})
    result = run_promotion(promotion_id=promotion.pk, backend=backend, sleep=lambda s: None)
    assert result.state == "failed"
    assert (
        result.error_message
        == "server: 502 (nothing of the set was published; resume to try again)"
    )
    assert items(result) == [("kornia", "failed", 2)]


def _three(world, run_checks):
    builds = [world.stage(name) for name in ("alpha", "beta", "gamma")]
    run_checks(builds)
    return builds


def test_item_failing_midway_publishes_nothing_and_resumes(world, run_checks, release_manager):
    builds = _three(world, run_checks)
    promotion = create(builds, release_manager)
    backend = ScriptedBackend({"beta": [CopyFailed("unauthorized: token", retryable=False)]})
    result = run_promotion(promotion_id=promotion.pk, backend=backend)
    assert result.state == "failed"  # never "partial": a set lands whole or not at all
    assert result.error_message.startswith("unauthorized: token (nothing of the set")
    assert items(result) == [
        ("alpha", "pending", 1),
        ("beta", "failed", 1),
        ("gamma", "pending", 1),
    ]
    assert not Build.objects.filter(pk__in=[b.pk for b in builds], state="promoted").exists()
    resume_promotion(promotion=result, requested_by=release_manager)
    result = run_promotion(promotion_id=promotion.pk, backend=backend)
    assert result.state == "done"
    assert backend.calls == ["alpha", "beta", "alpha", "beta", "gamma"]


def test_crash_midway_resumes_after_the_lease_and_copies_nothing_twice(
    world, run_checks, release_manager
):
    builds = _three(world, run_checks)
    promotion = create(builds, release_manager)
    backend = ScriptedBackend({"beta": [Crash()]})
    with pytest.raises(Crash):
        run_promotion(promotion_id=promotion.pk, backend=backend)
    promotion.refresh_from_db()
    assert promotion.state == "running"
    assert items(promotion) == [
        ("alpha", "copying", 1),
        ("beta", "copying", 1),
        ("gamma", "copying", 1),
    ]
    # While the lease runs, the job may still be alive: no second copy may start.
    with pytest.raises(ValidationError, match="still running"):
        resume_promotion(promotion=promotion, requested_by=release_manager)
    assert run_promotion(promotion_id=promotion.pk, backend=backend) is None
    Promotion.objects.filter(pk=promotion.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    resume_promotion(promotion=promotion, requested_by=release_manager)
    result = run_promotion(promotion_id=promotion.pk, backend=backend)
    assert result.state == "done"
    assert backend.calls == ["alpha", "beta", "alpha", "beta", "gamma"]


def test_crash_after_the_file_landed_is_recognised_by_its_sha256(
    world, run_checks, release_manager
):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)

    class DiesAfterCopying(LocalBackend):
        died = False

        def publish(self, builds):
            done = super().publish(builds)
            if not DiesAfterCopying.died:
                DiesAfterCopying.died = True
                raise Crash
            return done

    backend = DiesAfterCopying(source=world.staging, target=world.target)
    with pytest.raises(Crash):
        run_promotion(promotion_id=promotion.pk, backend=backend)
    Promotion.objects.filter(pk=promotion.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    resume_promotion(promotion=promotion, requested_by=release_manager)
    result = run_promotion(promotion_id=promotion.pk, backend=backend)
    assert result.state == "done"
    assert "already in" in result.items.get().detail


def test_cancelled_promotion_is_not_copied_and_frees_its_builds(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    cancel_promotion(promotion=promotion, requested_by=release_manager)
    assert run_promotion(promotion_id=promotion.pk, backend=ScriptedBackend()) is None
    assert PromotionItem.objects.get().state == "pending"
    assert get_build_gate(build.pk).policy("not_promoted").status == "pass"


def test_resume_of_a_done_promotion_is_refused(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)
    run_promotion(promotion_id=promotion.pk, backend=ScriptedBackend())
    with pytest.raises(ValidationError, match="nothing to resume"):
        resume_promotion(promotion=promotion, requested_by=release_manager)


def test_solver_errors_before_copying_are_recorded(world, run_checks, release_manager):
    build = promotable(world, run_checks)
    promotion = create([build], release_manager)

    def broken_solver(**kwargs):
        raise SolverUnavailable("error sending request for url (https://conda.example/...)")

    result = run_promotion(
        promotion_id=promotion.pk, backend=ScriptedBackend(), solver=broken_solver
    )
    assert result.state == "failed"
    assert "could not run: error sending request" in result.error_message
    check = InstallabilityCheck.objects.filter(kind="precopy").first()
    assert check.state == "error"


def test_periodic_sweep_queues_checks_of_never_checked_candidates_only(
    world, run_checks, django_capture_on_commit_callbacks
):
    checked = promotable(world, run_checks, name="checked")
    unchecked = world.stage("unchecked")
    with django_capture_on_commit_callbacks(execute=True):
        assert request_missing_checks() == 1
    assert not InstallabilityCheck.objects.filter(
        subject_key=f"build:{checked.pk}", state="queued"
    ).exists()
    drain("install")
    assert get_build_gate(unchecked.pk).promotable


def test_install_sets_of_a_release_without_pytorch_builds_are_skipped_with_the_reason(
    world, run_checks, release_manager, tmp_path, client, django_capture_on_commit_callbacks
):
    """PyTorch 2.13.0 is supported but the stack's records hold pytorch 2.5.1 only: its set
    cannot install whatever was promoted, so it is skipped (neutral), not failed."""
    newer = factories.TorchReleaseFactory(version="2.13.0", supported=True)
    newer.platforms.set([world.platform])
    import_repodata(
        channel=world.upstream, source=str(tmp_path / "upstream" / "linux-64" / "repodata.json")
    )
    build = promotable(world, run_checks)
    with django_capture_on_commit_callbacks(execute=True):
        promotion = create([build], release_manager)
    drain("promote")
    promotion.refresh_from_db()
    step = promotion.followups[-1]
    assert (step["step"], step["ok"]) == ("check install sets", True)
    assert step["skipped"] == [
        {
            "label": "pytorch @ pytorch 2.13.0",
            "subdir": "linux-64",
            "reason": "no pytorch 2.13.0 build for linux-64 in the channel stack "
            "(it holds 1 other version, newest 2.5.1)",
        }
    ]
    assert "1 install set skipped" in step["detail"]
    # Only the release the stack has builds of was solved.
    post = promotion.installability_checks.get(kind="post")
    assert (post.label, post.ok) == ("pytorch @ pytorch 2.5.1", True)
    client.force_login(release_manager)
    page = client.get(promotion.get_absolute_url()).content.decode()
    assert "no pytorch 2.13.0 build for linux-64 in the channel stack" in page
    assert 'data-gate="fail"' not in page
