"""Install checks: the real lock-file channels (pytorch + nvidia + conda-forge) solved by
py-rattler in a SimpleWorker, and what a passing or failing check leads to."""

import json
from pathlib import Path

import conda_package_handling.api as cph
import pytest
from django.conf import settings

from packages_app.adapters.sample_channel import index_channel
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import TorchRelease
from packages_app.services.catalog import import_repodata
from testing_app.adapters.job_log import read_log_text
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import rq_queue
from testing_app.services.install_checks import cell_virtual_packages
from tests import factories
from tests.testing_app.packages import file_digests
from tests.testing_app.planning_world import drain
from tests.testing_app.planning_world import seed_reference

pytestmark = pytest.mark.django_db
LOCKFILE = settings.DEMO_DATA_DIR / "channels" / "lockfile"


@pytest.fixture
def lockfile(settings):
    """Reference rows and channels (pytorch, nvidia, conda-forge, ... in solver order) with the
    pytorch channel's linux-64 builds in the catalog."""
    settings.INSTALL_CHECK_VIRTUAL_PACKAGES = {}
    settings.RETRY_BACKOFF_S = [0]
    seed_reference()
    pytorch = Channel.objects.get(name="pytorch")
    import_repodata(channel=pytorch, source=str(LOCKFILE / "pytorch/linux-64/repodata.json"))
    return pytorch


def _check(
    build: Build, *, release: str, variant: str, python: str = "3.11", specs=None, **extra
) -> Job:
    variant_row = Variant.objects.get(name=variant)
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    (job,) = enqueue_jobs(
        run=run,
        jobs=[
            Job(
                kind=Job.Kind.INSTALL_CHECK,
                build=build,
                torch_release=TorchRelease.objects.get(version=release),
                variant=variant_row,
                platform=Platform.objects.get(subdir=build.subdir),
                python=python,
                extra_specs=variant_row.select_specs["pytorch"] if specs is None else specs,
                timeout_s=120,
                **extra,
            )
        ],
    )
    return job


def test_real_pytorch_231_with_cuda_121_solves_and_queues_its_test(
    lockfile, django_capture_on_commit_callbacks
):
    build = Build.objects.get(
        channel=lockfile, filename__startswith="pytorch-2.3.1-py3.11_cuda12.1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1")
    drain("install")

    check.refresh_from_db()
    assert (check.status, check.verdict, check.runner) == ("finished", "passed", "rattler-solver")
    solved = {p["name"]: p for p in check.solved_packages}
    assert solved["pytorch"]["build"] == "py3.11_cuda12.1_cudnn8.9.2_0"
    assert solved["pytorch-cuda"]["version"] == "12.1"
    assert solved["python"]["version"].startswith("3.11")
    assert len(solved) > 40  # the whole environment, CUDA libraries from nvidia included
    test = Job.objects.get(run=check.run, kind="test")
    assert (test.queue_name, test.status) == ("test.linux-64.cuda12.1", "queued")
    assert (test.pinned_build_id, test.extra_specs) == (None, ["pytorch-cuda 12.1.*"])
    cell = CellResult.objects.get(build=build, variant__name="cuda12.1")
    assert (cell.verdict, cell.latest_job_id) == ("queued", test.pk)  # the test owns the cell


def test_torchvision_pinned_to_another_pytorch_is_uninstallable_with_the_reason(
    lockfile, django_capture_on_commit_callbacks
):
    torchvision = Build.objects.get(filename="torchvision-0.18.1-py311_cu121.tar.bz2")
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(torchvision, release="2.2.0", variant="cuda12.1")
    drain("install")

    check.refresh_from_db()
    assert (check.status, check.verdict) == ("finished", "uninstallable")
    assert "Cannot solve the request" in check.failure_excerpt
    assert "torchvision" in check.failure_excerpt
    assert "pytorch ==2.3.1" in check.failure_excerpt  # what torchvision 0.18.1 requires
    assert not Job.objects.filter(run=check.run).exclude(pk=check.pk).exists()  # no retry, no test
    assert CellResult.objects.get(build=torchvision).verdict == "uninstallable"


def test_cell_virtual_packages_come_from_the_variant_and_platform(lockfile):
    cuda = Variant.objects.get(name="cuda12.1")
    cpu = Variant.objects.get(name="cpu")

    assert cell_virtual_packages(variant=cuda, subdir="linux-64") == [
        "__unix=0",
        "__linux=5.15",
        "__glibc=2.28",
        "__cuda=12.1",
    ]
    assert cell_virtual_packages(variant=cpu, subdir="linux-64") == [
        "__unix=0",
        "__linux=5.15",
        "__glibc=2.28",
    ]
    assert cell_virtual_packages(variant=cpu, subdir="osx-arm64") == ["__unix=0", "__osx=11.0"]
    assert cell_virtual_packages(variant=cuda, subdir="win-64") == ["__win=0", "__cuda=12.1"]


def _package_with_test_requirements(directory: Path, requirements: list[str]) -> Path:
    """conda-build's layout (info/test/test_time_dependencies.json), which rattler-build cannot
    make, so assembled here; its channel indexed by rattler's index_fs."""
    stage = directory / "stage"
    (stage / "info" / "test").mkdir(parents=True)
    index = {"name": "needs-tools", "version": "1.0", "build": "0", "build_number": 0,
             "depends": ["pytorch"], "subdir": "linux-64"}  # fmt: skip
    (stage / "info" / "index.json").write_text(json.dumps(index))
    (stage / "info" / "files").write_text("")
    (stage / "info" / "paths.json").write_text('{"paths": [], "paths_version": 1}')
    (stage / "info" / "test" / "run_test.sh").write_text("true\n")
    (stage / "info" / "test" / "test_time_dependencies.json").write_text(json.dumps(requirements))
    out = directory / "channel" / "linux-64"
    out.mkdir(parents=True)
    cph.create(str(stage), None, "needs-tools-1.0-0.conda", out_folder=str(out))
    (directory / "channel" / "noarch").mkdir()
    index_channel(directory / "channel")  # a staging channel is a real, indexed channel
    return out / "needs-tools-1.0-0.conda"


def _staged(path: Path, **overrides) -> Build:
    staging = factories.ChannelFactory(
        name="staging-checks", url=path.parent.parent.as_uri(), role="staging"
    )
    digests = file_digests(path)
    fields = {"sha256": digests["sha256"], "md5": digests["md5"], "size": digests["size"]}
    fields.update(overrides)
    return factories.BuildFactory(
        channel=staging,
        name="needs-tools",
        version="1.0",
        build_string="0",
        subdir="linux-64",
        filename=path.name,
        depends=["pytorch"],
        **fields,
    )


def test_test_time_dependencies_of_the_package_file_are_solved_too(
    lockfile, tmp_path, django_capture_on_commit_callbacks
):
    build = _staged(_package_with_test_requirements(tmp_path, ["no-such-test-tool >=1"]))
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1")
    drain("install")

    check.refresh_from_db()
    assert check.verdict == "uninstallable"
    assert "no-such-test-tool >=1" in check.failure_excerpt


def test_package_file_that_does_not_match_its_sha256_is_an_error_not_retried(
    lockfile, tmp_path, django_capture_on_commit_callbacks
):
    build = _staged(_package_with_test_requirements(tmp_path, []), sha256="0" * 64)
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cpu")
    drain("install")

    check.refresh_from_db()
    assert (check.verdict, check.attempt) == ("error", 1)
    assert "does not match the build's sha256" in check.error_message
    assert Job.objects.filter(run=check.run).count() == 1


def _broken_channels(tmp_path) -> list[Channel]:
    """Three unreadable upstream channels: nothing listening, no repodata (404 as a file), and
    a repodata.json that is not JSON."""
    corrupt = tmp_path / "corrupt"
    (corrupt / "linux-64").mkdir(parents=True)
    (corrupt / "noarch").mkdir()
    (corrupt / "linux-64" / "repodata.json").write_text('{"packages": {"x-1-0.tar.bz2": ')
    (corrupt / "noarch" / "repodata.json").write_text("not json at all")
    missing = tmp_path / "missing"
    missing.mkdir()
    return [
        Channel.objects.create(name="gone", url="http://127.0.0.1:9/gone", role="upstream"),
        Channel.objects.create(name="missing", url=missing.as_uri(), role="upstream"),
        Channel.objects.create(name="corrupt", url=corrupt.as_uri(), role="upstream"),
    ]


def test_unreadable_channels_are_left_out_and_named_and_the_check_passes_once(
    lockfile, tmp_path, django_capture_on_commit_callbacks, client
):
    broken = _broken_channels(tmp_path)
    build = Build.objects.get(
        channel=lockfile, filename__startswith="pytorch-2.3.1-py3.11_cuda12.1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1")
    drain("install")

    check.refresh_from_db()
    assert (check.verdict, check.attempt) == ("passed", 1)
    assert check.error_message.startswith("Solved without ")
    for channel in broken:
        assert channel.base_url in check.error_message
    assert {p["name"] for p in check.solved_packages} >= {"pytorch", "python"}
    assert not Job.objects.filter(retry_of=check).exists()
    assert Job.objects.get(run=check.run, kind="test").status == "queued"
    log = read_log_text(Path(settings.LOG_DIR) / check.log_path)
    assert "Solved without" in log
    assert "127.0.0.1:9" in log
    page = client.get(check.get_absolute_url()).content.decode()
    assert "<h2>Note</h2>" in page  # a passed check's note, not an "Error"
    assert "Solved without http://127.0.0.1:9/gone (unreadable:" in page


def test_not_solvable_without_an_unreadable_channel_is_one_error_naming_it_not_retried(
    lockfile, tmp_path, django_capture_on_commit_callbacks
):
    (gone, *_) = _broken_channels(tmp_path)
    build = Build.objects.get(channel=lockfile, filename__startswith="pytorch-2.3.1-py3.11_cpu")
    with django_capture_on_commit_callbacks(execute=True):
        # a package none of the readable channels holds: the answer may be in the broken ones
        check = _check(build, release="2.3.1", variant="cpu", specs=["no-such-package-anywhere"])
    drain("install")

    check.refresh_from_db()
    assert (check.verdict, check.attempt) == ("error", 1)
    assert gone.base_url in check.error_message
    assert "not called uninstallable" in check.error_message
    assert Job.objects.filter(run=check.run).count() == 1  # no retry, no test


def test_a_test_runner_setting_routes_the_test_to_that_runner_queue(
    lockfile, settings, django_capture_on_commit_callbacks
):
    build = Build.objects.get(filename="pytorch-2.3.1-py3.11_cuda12.1_cudnn8.9.2_0.tar.bz2")
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1", required_runner="rattler")
    with django_capture_on_commit_callbacks(execute=True):
        drain("install")  # the test job is pushed when finish_job's transaction commits

    test = Job.objects.get(run=check.run, kind="test")
    assert (test.queue_name, test.required_runner) == ("test.linux-64.cuda12.1@rattler", "rattler")
    assert rq_queue("test.linux-64.cuda12.1@rattler").count == 1


def test_an_install_check_whose_log_cannot_be_written_ends_error_naming_the_disk(
    lockfile, django_capture_on_commit_callbacks
):
    """As for tests (tests/faults): a verdict nobody can check against its log is not kept."""
    build = Build.objects.get(
        channel=lockfile, filename__startswith="pytorch-2.3.1-py3.11_cuda12.1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1")
    log_dir = Path(settings.LOG_DIR)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{check.pk}.log").symlink_to("/dev/full")  # every write: No space left
    drain("install")

    check.refresh_from_db()
    assert (check.status, check.verdict) == ("finished", "error")
    assert "No space left on device" in check.error_message
    assert "LOG_DIR" in check.error_message
    assert Job.objects.filter(retry_of=check).exists()  # another attempt runs it again


def test_without_the_package_file_a_solving_check_ends_installable_not_tested(
    lockfile, settings, django_capture_on_commit_callbacks
):
    """TESTS_NEED_PACKAGE_FILE (the offline demo): the catalog's record solves, but its file is
    not on this machine, so no test is queued that could only fail to download it."""
    settings.TESTS_NEED_PACKAGE_FILE = True
    build = Build.objects.get(
        channel=lockfile, filename__startswith="pytorch-2.3.1-py3.11_cuda12.1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        check = _check(build, release="2.3.1", variant="cuda12.1")
    drain("install")

    check.refresh_from_db()
    assert (check.status, check.verdict) == ("finished", "installable")
    assert check.solved_packages
    assert not Job.objects.filter(run=check.run, kind="test").exists()
    cell = CellResult.objects.get(build=build, variant__name="cuda12.1")
    assert (cell.verdict, cell.latest_job_id) == ("installable", check.pk)
