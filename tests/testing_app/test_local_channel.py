"""The local-channel backend for real (package files, rattler's index, a py-rattler solve and
install from the promoted channel), and the solver adapter it is checked with."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.core.management import call_command
from rattler import Gateway
from rattler import MatchSpec
from rattler import PrefixRecord
from rattler import SourceConfig
from rattler import install
from rattler import solve

from packages_app.models import Channel
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.local_channel import ensure_channel
from testing_app.adapters.local_channel import place_package
from testing_app.adapters.local_channel import reindex
from testing_app.adapters.rattler_sync import run_rattler
from testing_app.adapters.solver import SolverInputError
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import parse_virtual_package
from testing_app.adapters.solver import solve_environment
from testing_app.adapters.solver import write_candidate_channel
from tests.testing_app.packages import build_package
from tests.testing_app.packages import file_digests
from tests.testing_app.promotion_world import index_channel


@pytest.fixture
def upstream(tmp_path) -> Path:
    root = tmp_path / "upstream"
    build_package(root, name="python", version="3.11.10", build="h0_0", subdir="linux-64")
    index_channel(root)
    return root


@pytest.fixture
def staged(tmp_path) -> Path:
    return build_package(
        tmp_path / "staging",
        name="mytool",
        version="1.2.0",
        build="py_0",
        subdir="linux-64",
        depends=("python >=3.11",),
        module_source="VALUE = 42\n",
    )


def _listed(root: Path, subdir: str) -> list[str]:
    repodata = json.loads((root / subdir / "repodata.json").read_text())
    return sorted([*repodata.get("packages", {}), *repodata.get("packages.conda", {})])


def test_place_package_copies_indexes_and_a_solver_installs_it(tmp_path, upstream, staged):
    target = tmp_path / "target"
    placed = place_package(
        source=staged,
        root=target,
        subdir="linux-64",
        filename=staged.name,
        sha256=file_digests(staged)["sha256"],
    )
    assert placed.already_present is False
    assert (target / "linux-64" / staged.name).read_bytes() == staged.read_bytes()
    assert _listed(target, "linux-64") == [staged.name]
    assert (target / "linux-64" / "repodata.json.zst").is_file()
    assert (target / "noarch" / "repodata.json").is_file()
    # No scratch left behind for readers to trip over.
    assert not list(target.glob(".reindex-*"))
    assert not list((target / "linux-64").glob(".incoming-*"))

    result = solve_environment(
        channels=[target.as_uri(), upstream.as_uri()],
        platform="linux-64",
        specs=["mytool ==1.2.0"],
        virtual_packages=["__unix=0", "__linux=5.15"],
    )
    assert result.ok, result.explanation
    tool = result.find("mytool")
    assert (tool.version, tool.build, tool.channel.rstrip("/")) == (
        "1.2.0",
        "py_0",
        target.as_uri(),
    )

    # run_rattler, not asyncio.run: a browser test's event loop may be running in this thread.
    records = run_rattler(lambda: _solve_records([target.as_uri(), upstream.as_uri()], ["mytool"]))
    prefix = tmp_path / "env"
    run_rattler(lambda: install(records, target_prefix=prefix, cache_dir=tmp_path / "pkgs"))
    installed = {
        PrefixRecord.from_path(p).name.normalized for p in (prefix / "conda-meta").glob("*.json")
    }
    assert installed == {"mytool", "python"}
    assert (prefix / "site-packages" / "mytool.py").read_text() == "VALUE = 42\n"


async def _solve_records(channels, specs):
    """Rattler records (not our summary) for rattler's own installer."""
    return await solve(
        sources=channels,
        specs=[MatchSpec(s) for s in specs],
        gateway=Gateway(default_config=SourceConfig(sharded_enabled=False)),
        platforms=["linux-64", "noarch"],
        virtual_packages=[parse_virtual_package("__unix=0"), parse_virtual_package("__linux=5.15")],
    )


def test_place_package_twice_is_idempotent(tmp_path, staged):
    target = tmp_path / "target"
    sha = file_digests(staged)["sha256"]
    place_package(source=staged, root=target, subdir="linux-64", filename=staged.name, sha256=sha)
    again = place_package(
        source=staged, root=target, subdir="linux-64", filename=staged.name, sha256=sha
    )
    assert again.already_present is True
    assert _listed(target, "linux-64") == [staged.name]


def test_place_package_never_replaces_a_published_file(tmp_path, staged):
    target = tmp_path / "target"
    (target / "linux-64").mkdir(parents=True)
    published = target / "linux-64" / staged.name
    other = build_package(
        tmp_path / "other",
        name="mytool",
        version="1.2.0",
        build="py_0",
        subdir="linux-64",
        module_source="VALUE = 0\n",
    )
    published.write_bytes(other.read_bytes())
    with pytest.raises(LocalChannelError, match="never replaced") as excinfo:
        place_package(
            source=staged,
            root=target,
            subdir="linux-64",
            filename=staged.name,
            sha256=file_digests(staged)["sha256"],
        )
    assert excinfo.value.retryable is False
    assert published.read_bytes() == other.read_bytes()


def test_place_package_checksum_mismatch_places_nothing(tmp_path, staged):
    target = tmp_path / "target"
    with pytest.raises(LocalChannelError, match="does not match"):
        place_package(
            source=staged, root=target, subdir="linux-64", filename=staged.name, sha256="0" * 64
        )
    assert not (target / "linux-64" / staged.name).exists()


def test_place_package_refuses_unsafe_names(tmp_path, staged):
    with pytest.raises(LocalChannelError, match="unsafe"):
        place_package(
            source=staged,
            root=tmp_path / "t",
            subdir="linux-64",
            filename="../evil.conda",
            sha256="",
        )


def test_reindex_keeps_earlier_packages(tmp_path, staged):
    target = tmp_path / "target"
    place_package(
        source=staged,
        root=target,
        subdir="linux-64",
        filename=staged.name,
        sha256=file_digests(staged)["sha256"],
    )
    second = build_package(
        tmp_path / "more", name="other", version="0.1", build="0", subdir="linux-64"
    )
    (target / "linux-64" / second.name).write_bytes(second.read_bytes())
    reindex(target, subdirs=["linux-64"])
    assert _listed(target, "linux-64") == sorted([staged.name, second.name])


def test_ensure_channel_makes_an_empty_valid_channel(tmp_path):
    target = tmp_path / "empty"
    ensure_channel(target)
    assert _listed(target, "noarch") == []
    result = solve_environment(channels=[target.as_uri()], platform="linux-64", specs=["mytool"])
    assert result.ok is False
    assert "No candidates were found for mytool" in result.explanation


# --- the solver adapter -----------------------------------------------------------------------


def test_solver_candidate_channel_serves_only_the_candidates(tmp_path, upstream):
    record = {
        "fn": "kornia-0.7.3-py_0.conda",
        "name": "kornia",
        "version": "0.7.3",
        "build": "py_0",
        "build_number": 0,
        "depends": ["python >=3.11"],
        "subdir": "noarch",
        "noarch": "python",
    }
    candidates = write_candidate_channel(tmp_path / "cand", [record])
    result = solve_environment(
        channels=[candidates, upstream.as_uri()],
        platform="linux-64",
        specs=["kornia ==0.7.3 py_0"],
        virtual_packages=["__unix=0"],
    )
    assert result.ok
    assert [p.name for p in result.packages] == ["kornia", "python"]


def test_solver_unsolvable_request_explains_why(upstream):
    result = solve_environment(
        channels=[upstream.as_uri()], platform="linux-64", specs=["python 3.12.*"]
    )
    assert result.ok is False
    assert result.packages == ()
    assert "python 3.12.*" in result.explanation


def test_solver_reads_conda_style_exact_versions_leniently(upstream):
    assert solve_environment(
        channels=[upstream.as_uri()], platform="linux-64", specs=["python 3.11.10"]
    ).ok


def test_solver_bad_spec_is_an_input_error(upstream):
    with pytest.raises(SolverInputError, match="cannot be read"):
        solve_environment(channels=[upstream.as_uri()], platform="linux-64", specs=["python >=<3"])


def test_solver_missing_channel_is_unavailable(tmp_path):
    with pytest.raises(SolverUnavailable, match="noarch"):
        solve_environment(
            channels=[(tmp_path / "nowhere").as_uri()], platform="linux-64", specs=["python"]
        )


@pytest.mark.parametrize("text", ["cuda=12.4", "__cuda", "__cuda=not a version!"])
def test_parse_virtual_package_rejects_malformed_text(text):
    with pytest.raises(SolverInputError):
        parse_virtual_package(text)


def test_parse_virtual_package_reads_name_version_build():
    package = parse_virtual_package("__glibc=2.28")
    assert (package.name.normalized, str(package.version), str(package.build_string)) == (
        "__glibc",
        "2.28",
        "0",
    )


@pytest.mark.django_db
def test_init_target_channel_registers_a_valid_empty_local_target(tmp_path):
    directory = tmp_path / "target"
    out = io.StringIO()
    call_command("init_target_channel", "--dir", str(directory), stdout=out)
    target = Channel.objects.get(role=Channel.Role.TARGET)
    assert target.url == directory.resolve().as_uri()
    assert _listed(directory, "noarch") == []
    call_command("init_target_channel", "--dir", str(directory), stdout=out)  # idempotent
    assert Channel.objects.filter(role=Channel.Role.TARGET).count() == 1
    with pytest.raises(CommandError, match="already"):
        call_command("init_target_channel", "--dir", str(tmp_path / "other"), stdout=out)
