"""The package page gives maintainers what they paste: the install command and badge Markdown."""

import subprocess

import pytest

from packages_app.models import Channel
from packages_app.selectors.catalog import get_install_command
from tests.factories import ChannelFactory
from tests.factories import PackageFactory
from tests.factories import TorchReleaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def channels():
    upstream_first = ChannelFactory(name="pytorch", role=Channel.Role.UPSTREAM)
    upstream_second = ChannelFactory(name="conda-forge", role=Channel.Role.UPSTREAM)
    target = ChannelFactory(name="distro", role=Channel.Role.TARGET)
    return target, upstream_first, upstream_second


def test_install_command_puts_the_target_first_then_the_upstream_channels(channels):
    target, first, second = channels

    install = get_install_command(name="kornia")

    assert install.channels == [target.base_url, first.base_url, second.base_url]
    assert install.command == (
        f"conda install -c {target.base_url} -c {first.base_url} -c {second.base_url} kornia"
    )
    # `--add` prepends, so the last one added (the target) ends with the highest priority.
    assert install.config_commands[-1] == f"conda config --env --add channels {target.base_url}"
    assert install.config_commands[0] == f"conda config --env --add channels {second.base_url}"


def test_install_command_words_parse_as_conda_arguments(channels):
    """The command is one shell line: words split as the shell splits them."""
    install = get_install_command(name="kornia")
    words = subprocess.run(
        ["bash", "-c", f'set -- {install.command}; printf "%s\\n" "$@"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert words[:2] == ["conda", "install"]
    assert words[-1] == "kornia"
    assert words[2::2][: len(install.channels)] == ["-c"] * len(install.channels)


def test_no_target_channel_means_no_install_command():
    ChannelFactory(name="pytorch", role=Channel.Role.UPSTREAM)
    assert get_install_command(name="kornia") is None


def test_package_page_shows_the_install_command_and_badge_markdown(client, channels, settings):
    settings.SITE_URL = "https://distro.example.org"
    PackageFactory(name="kornia")
    TorchReleaseFactory(version="2.5.1", supported=True)
    TorchReleaseFactory(version="2.4.1", supported=True)

    body = client.get("/packages/kornia/").content.decode()

    assert get_install_command(name="kornia").command in body
    assert (
        "[![kornia on conda-distro](https://distro.example.org/badges/kornia.svg)]"
        "(https://distro.example.org/packages/kornia/)"
    ) in body
    assert "https://distro.example.org/badges/kornia/2.5.1.svg" in body
    assert "https://distro.example.org/badges/kornia/2.4.1.svg" in body
    # Every badge the page offers is served.
    assert client.get("/badges/kornia.svg").status_code == 200
    assert client.get("/badges/kornia/2.5.1.svg").status_code == 200
