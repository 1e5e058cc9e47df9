"""A set is published all or nothing (local target, real files, real index, real solver): every
file first (sha256 verified), one index, one switch of the repodata. A failure before the switch
leaves the target exactly as it was, says why, and resumes; the check before copying solves
from the files themselves, not from the catalog's records of them."""

import pytest

from packages_app.models import Build
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.solver import solve_environment
from testing_app.selectors.promotions import get_target_overview
from testing_app.services.promotion_backends import LocalBackend
from testing_app.services.promotions import create_promotion
from testing_app.services.promotions import resume_promotion
from testing_app.services.promotions import run_promotion

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = pytest.mark.django_db


def snapshot(root):
    """Every file under the channel (the lock file aside) with its bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".promotion.lock"
    }


def _set(world, run_checks):
    alpha = world.stage("alpha")
    beta = world.stage("beta", depends=("pytorch >=2.5,<2.6", "alpha ==1.0.0"))
    gamma = world.stage("gamma")
    run_checks([alpha, beta, gamma])
    return [alpha, beta, gamma]


def _promote(builds, user):
    promotion, _ = create_promotion(
        build_ids=[b.pk for b in builds], requested_by=user, idempotency_key="atomic"
    )
    return promotion


def test_failure_before_the_switch_leaves_the_target_as_it_was_and_resumes(
    world, run_checks, release_manager, monkeypatch
):
    builds = _set(world, run_checks)
    promotion = _promote(builds, release_manager)
    before = snapshot(world.target_dir)
    assert before  # the empty target channel's noarch index

    class FailsToIndex(LocalBackend):
        def publish(self, builds):
            with monkeypatch.context() as patch:
                patch.setattr(
                    "testing_app.adapters.local_channel._index_mirror",
                    _failing_index,
                )
                return super().publish(builds)

    backend = FailsToIndex(source=world.staging, target=world.target)
    result = run_promotion(promotion_id=promotion.pk, backend=backend, sleep=lambda s: None)

    assert result.state == "failed"
    assert "indexing failed: disk full" in result.error_message
    assert "nothing of the set was published" in result.error_message
    assert snapshot(world.target_dir) == before  # not one byte changed
    assert not list(world.target_dir.glob(".publish-*"))  # the mirror is gone
    assert not Build.objects.filter(state="promoted").exists()
    assert get_target_overview().builds == []

    resume_promotion(promotion=result, requested_by=release_manager)
    result = run_promotion(promotion_id=promotion.pk)

    assert result.state == "done", result.error_message
    solved = solve_environment(
        channels=[world.target.base_url, world.upstream.base_url],
        platform="linux-64",
        specs=["beta", "gamma"],
        virtual_packages=["__unix=0", "__linux=5.15"],
    )
    assert solved.ok, solved.explanation
    assert {p.name for p in solved.packages} >= {"alpha", "beta", "gamma"}
    assert {b.name for b in get_target_overview().builds} == {"alpha", "beta", "gamma"}


def _failing_index(mirror, subdirs):
    raise LocalChannelError("indexing failed: disk full", retryable=True)


def test_missing_source_file_stops_the_set_before_anything_is_copied(
    world, run_checks, release_manager
):
    builds = _set(world, run_checks)
    promotion = _promote(builds, release_manager)
    before = snapshot(world.target_dir)
    (world.staging_dir / "linux-64" / builds[2].filename).unlink()

    result = run_promotion(promotion_id=promotion.pk, sleep=lambda s: None)

    assert result.state == "failed"
    assert builds[2].filename in result.error_message
    assert "does not exist" in result.error_message
    assert snapshot(world.target_dir) == before


def test_check_before_copying_solves_from_the_files_not_the_records(
    world, run_checks, release_manager
):
    # The file needs a package nobody has; its catalog record (edited) says it needs nothing.
    broken = world.stage("broken", depends=("pytorch >=2.5,<2.6", "nowhere-to-be-found"))
    Build.objects.filter(pk=broken.pk).update(depends=["pytorch >=2.5,<2.6"])
    broken.refresh_from_db()
    run_checks([broken])  # the gate's own checks read the records: they pass
    promotion = _promote([broken], release_manager)
    before = snapshot(world.target_dir)

    result = run_promotion(promotion_id=promotion.pk, sleep=lambda s: None)

    assert result.state == "failed"
    assert result.error_message.startswith("not installable from the target on linux-64")
    assert "nowhere-to-be-found" in result.error_message
    assert snapshot(world.target_dir) == before
