"""Suggested sets from solves, over real conda-forge records (the lock-file channel the project
ships): libtorch, pytorch, torchvision and torchaudio 2.7 (cpu) staged together with a
torchvision 0.26 whose pytorch 2.10 is upstream. pytorch pins its libtorch exactly
(`libtorch 2.7.1 cpu_mkl_hf38bc2d_103`), torchvision 0.22 and torchaudio 2.7.1 take pytorch
by a range (`pytorch >=2.7.1,<2.8.0a0`, `pytorch >=2.7.0,<2.8.0a0`).

Oracle: an independent brute force. For each staged build, every subset of the other staged
builds is put in front of the channel stack and solved; the minimal subsets that make the
build installable are what it needs. The stored partners (found by the service's solve, then
pare-down) must equal that minimal subset, and the suggested sets must equal the connected
groups the brute force gives."""

import itertools
import json
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.services.catalog import import_repodata
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import exact_spec
from testing_app.adapters.solver import solve_environment
from testing_app.adapters.solver import write_candidate_channel
from testing_app.models import InstallabilityCheck
from testing_app.models import SetPartnerSolve
from testing_app.selectors.installability_plan import ALONE
from testing_app.selectors.installability_plan import candidate_record
from testing_app.selectors.installability_plan import subject_key
from testing_app.selectors.promotion_sets import suggest_sets
from testing_app.selectors.promotions import list_candidate_builds
from testing_app.selectors.promotions import suggest_set_for
from testing_app.services.set_solves import REPUSH_AFTER
from testing_app.services.set_solves import job_timeout_s
from testing_app.services.set_solves import request_set_partner_solves
from testing_app.services.set_solves import run_set_partner_solve
from testing_app.services.set_solves import sweep_installability
from tests import factories
from tests.testing_app.promotion_world import drain
from tests.testing_app.promotion_world import index_channel

pytestmark = pytest.mark.django_db

CONDA_FORGE = settings.DEMO_DATA_DIR / "channels" / "lockfile" / "conda-forge"
LIBTORCH = "libtorch-2.7.1-cpu_mkl_hf38bc2d_103.conda"
PYTORCH = "pytorch-2.7.1-cpu_mkl_py312_h8abce0f_103.conda"
VISION = "torchvision-0.22.0-cpu_py312_h56cfa8b_2.conda"
AUDIO = "torchaudio-2.7.1-cpu_py312h818ee80_1.conda"
VISION_NEXT = "torchvision-0.26.0-cpu_py314_hf84c570_0.conda"  # its pytorch 2.10 is upstream
STAGED = (LIBTORCH, PYTORCH, VISION, AUDIO, VISION_NEXT)
VIRTUAL = ["__unix=0", "__linux=5.15", "__glibc=2.28"]


def _split_channel(tmp_path: Path) -> tuple[Path, Path]:
    """The real conda-forge records as two channels: upstream without the staged records, and
    staging with only them."""
    upstream, staging = tmp_path / "upstream", tmp_path / "staging"
    for subdir in ("linux-64", "noarch"):
        repodata = json.loads((CONDA_FORGE / subdir / "repodata.json").read_text())
        staged = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}}
        for key in ("packages", "packages.conda"):
            for filename in [fn for fn in repodata.get(key, {}) if fn in STAGED]:
                staged[key][filename] = repodata[key].pop(filename)
        for root, data in ((upstream, repodata), (staging, staged)):
            (root / subdir).mkdir(parents=True)
            (root / subdir / "repodata.json").write_text(json.dumps(data))
    return upstream, staging


@pytest.fixture
def release_week(settings, tmp_path):
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    settings.INSTALL_CHECK_VIRTUAL_PACKAGES = {"linux-64": VIRTUAL}
    settings.INSTALL_SETS = [["pytorch", "torchvision", "torchaudio"]]
    factories.PlatformFactory(subdir="linux-64")
    upstream_dir, staging_dir = _split_channel(tmp_path)
    target_dir = tmp_path / "target"
    index_channel(target_dir)
    Channel.objects.create(name="target", url=target_dir.as_uri(), role=Channel.Role.TARGET)
    Channel.objects.create(name="cf", url=upstream_dir.as_uri(), role=Channel.Role.UPSTREAM)
    staging = Channel.objects.create(
        name="staging", url=staging_dir.as_uri(), role=Channel.Role.STAGING
    )
    for name in ("libtorch", "pytorch", "torchvision", "torchaudio"):
        package = factories.PackageFactory(name=name)
        package.maintainers.add(factories.MaintainerFactory())
    import_repodata(channel=staging, source=str(staging_dir / "linux-64" / "repodata.json"))
    builds = {b.filename: b for b in list_candidate_builds()}
    assert sorted(builds) == sorted(STAGED)
    return {"builds": builds, "upstream": upstream_dir.as_uri(), "target": target_dir.as_uri()}


def _solvable(build: Build, others, *, channels: list[str], scratch: Path) -> bool:
    front = write_candidate_channel(scratch, [candidate_record(b) for b in [build, *others]])
    result = solve_environment(
        channels=[front, *channels],
        platform="linux-64",
        specs=[exact_spec(candidate_record(build))],
        virtual_packages=VIRTUAL,
        channel_priority="strict",
    )
    return result.ok


def _brute_force_needs(builds: dict, channels: list[str], tmp_path: Path) -> dict[str, set]:
    """filename -> the one minimal set of other staged filenames that makes it installable."""
    needs = {}
    for n, (filename, build) in enumerate(builds.items()):
        others = [f for f in builds if f != filename]
        ok_subsets = []
        for size in range(len(others) + 1):
            for i, subset in enumerate(itertools.combinations(others, size)):
                scratch = tmp_path / f"oracle-{n}-{size}-{i}"
                if any(set(s) <= set(subset) for s in ok_subsets):
                    continue  # a smaller subset already works: not minimal
                staged = [builds[f] for f in subset]
                if _solvable(build, staged, channels=channels, scratch=scratch):
                    ok_subsets.append(subset)
        assert len(ok_subsets) == 1, (filename, ok_subsets)  # the real data decide uniquely
        needs[filename] = set(ok_subsets[0])
    return needs


def _groups(needs: dict[str, set]) -> list[set]:
    groups: list[set] = []
    for filename, needed in needs.items():
        joined = {filename, *needed}
        touching = [g for g in groups if g & joined]
        for g in touching:
            groups.remove(g)
            joined |= g
        groups.append(joined)
    return sorted((g for g in groups if len(g) > 1), key=sorted)


def test_sets_from_solves_equal_the_brute_force_over_real_records(
    release_week, tmp_path, django_capture_on_commit_callbacks
):
    builds = release_week["builds"]
    with django_capture_on_commit_callbacks(execute=True):
        sweep_installability()
    assert SetPartnerSolve.objects.filter(state="queued").count() == len(STAGED)
    with django_capture_on_commit_callbacks(execute=True):
        drain("install")  # the solves; the last requests the checks of the sets found
    drain("install")  # those checks
    assert not SetPartnerSolve.objects.exclude(state="done").exists()

    oracle = _brute_force_needs(
        builds, [release_week["target"], release_week["upstream"]], tmp_path
    )
    by_pk = {b.pk: fn for fn, b in builds.items()}
    found = {
        by_pk[row.build_id]: {by_pk[pk] for pk in row.partner_ids}
        for row in SetPartnerSolve.objects.all()
    }
    assert found == oracle
    # The facts the oracle found, spelled out: the exact pin, the two ranges, the outsider.
    assert oracle[LIBTORCH] == set()
    assert oracle[VISION_NEXT] == set()
    assert oracle[PYTORCH] == {LIBTORCH}
    assert oracle[VISION] == oracle[AUDIO] == {PYTORCH, LIBTORCH}

    expected = _groups(oracle)
    assert expected == [{LIBTORCH, PYTORCH, VISION, AUDIO}]
    sets = suggest_sets(list(builds.values()))
    assert [{by_pk[pk] for pk in ids} for ids in sets] == expected
    for filename in (LIBTORCH, PYTORCH, VISION, AUDIO):
        assert {by_pk[pk] for pk in suggest_set_for(builds[filename])} == expected[0]
    assert suggest_set_for(builds[VISION_NEXT]) == []

    # The sweep checked the set as a set: one solve of all members together, recorded.
    members = [builds[f] for f in expected[0]]
    together = InstallabilityCheck.objects.get(subject_key=subject_key(members), label=ALONE)
    assert (together.state, together.ok) == ("done", True), together.explanation
    solved = {p["name"] for p in together.packages if p["channel"] == "candidates (staged)"}
    assert solved == {"libtorch", "pytorch", "torchvision", "torchaudio"}


def test_sweep_again_with_the_same_candidates_queues_no_solve(
    release_week, django_capture_on_commit_callbacks
):
    candidates = list(list_candidate_builds())
    with django_capture_on_commit_callbacks(execute=True):
        assert request_set_partner_solves(candidates=candidates) == len(STAGED)
        assert request_set_partner_solves(candidates=candidates) == 0
    # Other candidates (one promoted) change what each build may lean on: solved again.
    with django_capture_on_commit_callbacks(execute=True):
        assert request_set_partner_solves(candidates=candidates[:-1]) == len(STAGED) - 1


def test_promoted_partner_leaves_the_suggested_set(
    release_week, django_capture_on_commit_callbacks
):
    builds = release_week["builds"]
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=list(builds.values()))
    drain("install")
    libtorch = builds[LIBTORCH]
    libtorch.state = Build.State.PROMOTED
    libtorch.save(update_fields=["state"])
    remaining = list(list_candidate_builds())
    # Until the sweep solves again, the stored partners still tie the others together.
    (group,) = suggest_sets(remaining)
    assert {Build.objects.get(pk=pk).name for pk in group} == {
        "pytorch",
        "torchvision",
        "torchaudio",
    }


def test_excuses_and_promotions_pages_show_the_set_from_solves(
    release_week, client, django_capture_on_commit_callbacks
):
    builds = release_week["builds"]
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=list(builds.values()))
    page = client.get(reverse("testing:promotion-queue")).content.decode()
    assert "5 solves of staged builds still to run" in page
    drain("install")

    page = client.get(reverse("testing:build-excuses", args=[builds[AUDIO].pk])).content.decode()
    assert 'id="suggested-set"' in page
    assert "not installable" in page
    for other in (LIBTORCH, PYTORCH, VISION):
        assert reverse("testing:build-excuses", args=[builds[other].pk]) in page
    outsider = client.get(reverse("testing:build-excuses", args=[builds[VISION_NEXT].pk]))
    assert 'id="suggested-set"' not in outsider.content.decode()
    assert "installable" in outsider.content.decode()

    queue = client.get(reverse("testing:promotion-queue")).content.decode()
    assert "Coordinated sets" in queue
    assert "still to run" not in queue
    section = queue.split('id="sets-title"')[1].split("</section>")[0]
    assert "torchaudio 2.7.1" in section
    assert "libtorch 2.7.1" in section
    assert "0.26.0" not in section


def test_solve_that_cannot_run_is_recorded_with_its_reason(
    release_week, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=[release_week["builds"][PYTORCH]])
    row = SetPartnerSolve.objects.get()

    def unreachable(**_):
        raise SolverUnavailable("cannot reach the upstream channel")

    run_set_partner_solve(solve_id=row.pk, solver=unreachable)
    row.refresh_from_db()
    assert (row.state, row.alone_ok) == ("error", None)
    assert "cannot reach the upstream channel" in row.error_message
    # A second delivery of the same job does nothing.
    assert run_set_partner_solve(solve_id=row.pk) is None


def test_solve_whose_job_was_lost_is_pushed_again_by_the_sweep(
    release_week, django_capture_on_commit_callbacks
):
    build = release_week["builds"][PYTORCH]
    request_set_partner_solves(candidates=[build])  # its push never runs: the job is lost
    row = SetPartnerSolve.objects.get()
    assert django_rq.get_queue("install").count == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert request_set_partner_solves(candidates=[build]) == 0
    assert django_rq.get_queue("install").count == 0  # not yet: it may still be on its way
    SetPartnerSolve.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - REPUSH_AFTER - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert request_set_partner_solves(candidates=[build]) == 0
    drain("install")
    row.refresh_from_db()
    assert (row.state, row.alone_ok) == ("done", False)
    assert row.with_staged_ok is True
    assert row.partner_ids == [release_week["builds"][LIBTORCH].pk]


def test_solve_left_running_by_a_dead_worker_is_queued_again(
    release_week, django_capture_on_commit_callbacks
):
    build = release_week["builds"][VISION_NEXT]
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=[build])
    django_rq.get_queue("install").empty()  # the worker took the job and died with it
    row = SetPartnerSolve.objects.get()
    SetPartnerSolve.objects.filter(pk=row.pk).update(
        state="running",
        created_at=timezone.now() - REPUSH_AFTER - timedelta(seconds=job_timeout_s() + 1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        request_set_partner_solves(candidates=[build])
    drain("install")
    row.refresh_from_db()
    assert (row.state, row.alone_ok, row.partner_ids) == ("done", True, [])
