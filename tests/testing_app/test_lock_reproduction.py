"""Real pixi lock files reproduced: the top-level specs of each locked environment, solved with
the cell's virtual packages through a channel stack that expresses the lock's own (pixi: the
environment's channels in order, strict priority, no pip), give the locked python, pytorch,
torchvision and CUDA packages. The channels are the demo's, made of these locks' records."""

import lzma
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from packages_app.selectors.channel_stack_types import ChannelStack
from packages_app.selectors.channel_stack_types import StackChannel
from testing_app.adapters.solver import solve_environment
from testing_app.services.install_checks import platform_virtual_packages

LOCKS = settings.DEMO_DATA_DIR / "lockfiles"
CHANNELS = settings.DEMO_DATA_DIR / "channels" / "lockfile"
COMPARED = ("python", "pytorch", "torchvision", "libtorch", "pytorch-mutex", "pytorch-cuda",
            "cuda-version", "cuda-cudart", "cuda-runtime")  # fmt: skip
_FILE = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(conda|tar\.bz2)$")


def _locked(lock: str, environment: str, platform: str) -> dict[str, tuple[str, str]]:
    data = yaml.safe_load(lzma.decompress((LOCKS / lock).read_bytes()))
    packages = data["environments"][environment]["packages"][platform]
    locked = {}
    for entry in packages:
        if "conda" in entry:
            match = _FILE.match(entry["conda"].rsplit("/", 1)[1])
            locked[match["name"]] = (match["version"], match["build"])
    return locked


def _lock_channels(lock: str, environment: str) -> list[str]:
    data = yaml.safe_load(lzma.decompress((LOCKS / lock).read_bytes()))
    urls = [c["url"] for c in data["environments"][environment]["channels"]]
    return [url.rstrip("/").rsplit("/", 1)[1] for url in urls]


def _pixi_stack(names: list[str]) -> ChannelStack:
    """pixi's stack for an environment: its channels in order, strict, no pip."""
    channels = [StackChannel(name=n, url=(CHANNELS / n).resolve().as_uri()) for n in names]
    return ChannelStack(tuple(channels), priority="strict", pip_as_python_dependency=False)


# The manifests' top-level specs (pixi.toml at the same commits): multi-machine@dcadcb5b21cb asks
# conda-forge for pytorch >=2.10.0,<3 and torchvision >=0.26.0,<0.27; multi-machine@5e6b1a1f1aa0
# asks for python 3.11.* and, from the pytorch channel, pytorch >=2.0.1 and torchvision >=0.15;
# its cuda feature (system requirement cuda 12.1) adds pytorch-cuda 12.1.* from that channel.
CASES = [
    ("pixi__examples_multi-machine__dcadcb5b21cb.pixi.lock.xz", "default", "linux-64",
     [("", "pytorch >=2.10.0,<3"), ("", "torchvision >=0.26.0,<0.27")], ""),
    ("pixi__examples_multi-machine__dcadcb5b21cb.pixi.lock.xz", "default", "win-64",
     [("", "pytorch >=2.10.0,<3"), ("", "torchvision >=0.26.0,<0.27")], ""),
    ("pixi__examples_multi-machine__5e6b1a1f1aa0.pixi.lock.xz", "default", "linux-64",
     [("", "python 3.11.*"), ("pytorch", "pytorch >=2.0.1"), ("pytorch", "torchvision >=0.15")],
     ""),
    ("pixi__examples_multi-machine__5e6b1a1f1aa0.pixi.lock.xz", "cuda", "linux-64",
     [("", "python 3.11.*"), ("pytorch", "pytorch >=2.0.1"), ("pytorch", "torchvision >=0.15"),
      ("pytorch", "pytorch-cuda 12.1.*")], "12.1"),
]  # fmt: skip


@pytest.mark.parametrize(("lock", "environment", "platform", "specs", "cuda"), CASES)
def test_a_real_lock_file_is_reproduced_through_its_stack(
    settings, lock, environment, platform, specs, cuda
):
    settings.INSTALL_CHECK_VIRTUAL_PACKAGES = {}
    stack = _pixi_stack(_lock_channels(lock, environment))
    virtual = platform_virtual_packages(platform) + ([f"__cuda={cuda}"] if cuda else [])
    requested = [stack.from_channel(c, s) if c else s for c, s in specs]

    result = solve_environment(
        channels=stack.urls(),
        platform=platform,
        specs=requested,
        virtual_packages=virtual,
        channel_priority=stack.priority,
        pip_as_python_dependency=stack.pip_as_python_dependency,
    )

    assert result.ok, result.explanation
    locked = _locked(lock, environment, platform)
    solved = {p.name: (p.version, p.build) for p in result.packages}
    compared = [name for name in COMPARED if name in locked]
    assert {"python", "pytorch", "torchvision"} <= set(compared)
    assert {n: solved.get(n) for n in compared} == {n: locked[n] for n in compared}


def test_rattlers_strict_priority_is_per_matching_record_not_per_name():
    """Pinned so that a py-rattler upgrade that changes it is noticed (channel_stack.py says
    what it means): behind a pytorch channel holding PyTorch up to 2.4.1, py-rattler's strict
    mode still takes conda-forge's 2.10.0 for `pytorch >=2.10`, where conda's strict mode would
    not consider conda-forge's pytorch at all; it does exclude lower channels' records when a
    higher channel has a matching one (nvidia's cuda-cudart behind conda-forge)."""
    stack = _pixi_stack(["pytorch", "nvidia", "conda-forge"])
    linux = ["__unix=0", "__linux=5.15", "__glibc=2.28"]
    newer = solve_environment(
        channels=stack.urls(), platform="linux-64", specs=["pytorch >=2.10.0,<3"],
        virtual_packages=linux, channel_priority="strict",
    )  # fmt: skip
    assert newer.ok, newer.explanation
    assert newer.find("pytorch").channel.rstrip("/").endswith("conda-forge")
    shadowed = solve_environment(
        channels=_pixi_stack(["conda-forge", "pytorch", "nvidia"]).urls(), platform="linux-64",
        specs=["pytorch ==2.3.1", "pytorch-cuda 12.1.*"], virtual_packages=[*linux, "__cuda=12.1"],
        channel_priority="strict",
    )  # fmt: skip
    assert not shadowed.ok
    assert "strict channel priority" in shadowed.explanation


def test_lock_files_are_shipped_with_their_provenance():
    provenance = (settings.DEMO_DATA_DIR / "PROVENANCE.md").read_text()
    for lock in Path(LOCKS).glob("*.pixi.lock.xz"):
        assert lock.name in provenance
