"""Catalog selectors: reverse dependencies and the PyTorch releases a build admits."""

import pytest
from django.db import connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from packages_app.lint.torch_releases import admitted_torch_releases
from packages_app.models import Build
from packages_app.selectors.catalog import get_reverse_dependencies
from tests.factories import BuildFactory
from tests.factories import TorchReleaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain():
    """pytorch <- torchvision <- kornia <- kornia-rs-app; torchaudio <- pytorch; a cycle a<->b."""
    BuildFactory(name="pytorch", depends=["python >=3.10"])
    BuildFactory(name="torchvision", depends=["pytorch 2.1.0", "pillow"])
    BuildFactory(name="kornia", depends=["torchvision >=0.15", "pytorch >=1.9"])
    BuildFactory(name="kornia-app", depends=["kornia"])
    BuildFactory(name="torchaudio", depends=["pytorch 2.1.0"])
    BuildFactory(name="a", depends=["b", "pytorch"])
    BuildFactory(name="b", depends=["a"])
    BuildFactory(
        name="gone", depends=["pytorch"], state=Build.State.WITHDRAWN, filename="gone-1.conda"
    )


def test_reverse_dependencies_direct_only_by_default(chain):
    assert get_reverse_dependencies(name="pytorch") == {
        "a": 1,
        "kornia": 1,
        "torchaudio": 1,
        "torchvision": 1,
    }


def test_reverse_dependencies_transitive_with_depths_and_cycles(chain):
    assert get_reverse_dependencies(name="pytorch", transitive=True) == {
        "a": 1,
        "kornia": 1,
        "torchaudio": 1,
        "torchvision": 1,
        "b": 2,
        "kornia-app": 2,
    }
    assert get_reverse_dependencies(name="torchvision", transitive=True, max_depth=1) == {
        "kornia": 1
    }


def test_reverse_dependencies_ignore_withdrawn_builds(chain):
    assert "gone" not in get_reverse_dependencies(name="pytorch", transitive=True)


def test_reverse_dependencies_use_two_queries_whatever_the_catalog(
    chain, django_capture_on_commit_callbacks
):
    for index in range(50):
        BuildFactory(name=f"dep{index}", depends=[f"dep{index - 1}" if index else "pytorch"])
    with (
        CaptureQueriesContext(connection) as captured,
        django_capture_on_commit_callbacks(execute=True),
    ):
        depths = get_reverse_dependencies(name="pytorch", transitive=True)
    assert len(captured) == 2
    assert depths["dep49"] == 50
    # The graph is cached for this catalog state: the next call only checks the state.
    with CaptureQueriesContext(connection) as captured:
        assert get_reverse_dependencies(name="dep10") == {"dep11": 1}
    assert len(captured) == 1


def test_a_graph_read_in_a_rolled_back_transaction_is_never_cached(
    chain, django_capture_on_commit_callbacks
):
    """The rolled-back transaction saw revisions that a later commit reaches again with other
    builds: a graph cached under them would hide the later build."""
    neighbour = Build.objects.get(name="kornia-app")
    channel, subdir = neighbour.channel, neighbour.subdir

    def read_then_roll_back():
        with transaction.atomic():
            BuildFactory(name="rolled-back", depends=["kornia"], channel=channel, subdir=subdir)
            assert "rolled-back" in get_reverse_dependencies(name="kornia")
            raise RuntimeError("roll back")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            read_then_roll_back()
        assert callbacks == []
        # The same subdir as the rolled-back build: its revision is the same number again.
        BuildFactory(name="committed", depends=["kornia"], channel=channel, subdir=subdir)
        assert get_reverse_dependencies(name="kornia") == {"kornia-app": 1, "committed": 1}


def test_reverse_dependencies_see_new_and_withdrawn_builds_at_once(chain):
    assert "late" not in get_reverse_dependencies(name="kornia")
    late = BuildFactory(name="late", depends=["kornia"])
    assert get_reverse_dependencies(name="kornia") == {"kornia-app": 1, "late": 1}
    late.state = Build.State.WITHDRAWN
    late.save()
    assert get_reverse_dependencies(name="kornia") == {"kornia-app": 1}


@pytest.fixture
def releases():
    return [TorchReleaseFactory(version=v) for v in ("2.5.1", "2.5.0", "2.4.1", "2.1.0", "2.10.0")]


@pytest.mark.parametrize(
    ("depends", "constrains", "expected"),
    [
        (["pytorch 2.1.0"], [], {"2.1.0"}),
        (["pytorch >=2.4,<2.6"], [], {"2.4.1", "2.5.0", "2.5.1"}),
        (["pytorch 2.5.*"], [], {"2.5.0", "2.5.1"}),
        (["pytorch >=2.10.0,<2.11.0a0"], [], {"2.10.0"}),
        (["pytorch"], [], {"2.1.0", "2.4.1", "2.5.0", "2.5.1", "2.10.0"}),
        (["numpy"], ["pytorch <2.5"], {"2.1.0", "2.4.1"}),
        (["libtorch >=2.4"], [], {"2.4.1", "2.5.0", "2.5.1", "2.10.0"}),
    ],
)
def test_admitted_torch_releases_follow_rattler_specs(releases, depends, constrains, expected):
    build = BuildFactory(name="x", depends=depends, constrains=constrains)
    assert {r.version for r in admitted_torch_releases(build, releases)} == expected


def test_admitted_torch_releases_of_pytorch_itself_is_its_own_version(releases):
    build = BuildFactory(name="pytorch", version="2.5.1", depends=["python >=3.11"])
    assert [r.version for r in admitted_torch_releases(build, releases)] == ["2.5.1"]
