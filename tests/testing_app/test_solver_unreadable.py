"""One unreadable channel in a solve (adapters/solver.py skip_unreadable), against the real
lock-file channels: rattler alone fails the whole solve; skipping gives exactly the solve
without that channel, and names it."""

import pytest
from django.conf import settings

from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import solve_environment

LOCKFILE = settings.DEMO_DATA_DIR / "channels" / "lockfile"
LINUX = ["__unix=0", "__linux=5.15", "__glibc=2.28", "__cuda=12.1"]
SPECS = ["pytorch ==2.3.1 py3.11_cuda12.1_cudnn8.9.2_0", "pytorch-cuda 12.1.*"]


@pytest.fixture
def readable():
    return [(LOCKFILE / name).resolve().as_uri() for name in ("pytorch", "nvidia", "conda-forge")]


@pytest.fixture
def corrupt(tmp_path):
    for subdir in ("linux-64", "noarch"):
        (tmp_path / subdir).mkdir()
        (tmp_path / subdir / "repodata.json").write_text('{"packages": {')
    return tmp_path.as_uri()


def _solve(channels, **options):
    return solve_environment(
        channels=channels, platform="linux-64", specs=SPECS, virtual_packages=LINUX, **options
    )


def test_rattler_fails_the_whole_solve_for_one_unreadable_channel(readable, corrupt):
    with pytest.raises(SolverUnavailable, match="repodata"):
        _solve([*readable, corrupt])


def test_skipping_it_gives_the_solve_without_it_and_names_it(readable, corrupt):
    oracle = _solve(readable)  # the same request, the broken channel simply not listed
    skipped = _solve([readable[0], corrupt, *readable[1:]], skip_unreadable=True)

    assert oracle.ok, oracle.explanation
    assert skipped.ok, skipped.explanation
    assert skipped.packages == oracle.packages
    assert [url for url, _ in skipped.left_out] == [corrupt]
    assert "repodata" in skipped.left_out[0][1]
    assert oracle.left_out == ()


def test_when_no_channel_can_be_read_the_solve_is_unavailable(corrupt, tmp_path):
    missing = (tmp_path / "nothing-here").as_uri()
    with pytest.raises(SolverUnavailable, match="no channel could be read"):
        _solve([corrupt, missing], skip_unreadable=True)
