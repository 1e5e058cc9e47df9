"""The sandbox a test job runs in on this host: the operator's settings turned into a policy.

adapters/sandbox.py builds the bubblewrap command line; this module decides what a test may see:
the package file, local (file://) channels, the runner's own installation, and the Python
environment the rattler runner runs in, all read-only; its workspace (the job's croot) writable.

How each runner is wrapped (the one seam, `SandboxPolicy.argv`):
- conda-build solves, installs and tests in one process, so the whole command runs in the
  sandbox. It writes packages into the job's own cache (<croot>/pkgs) and reads the host's shared
  cache read-only (conda uses the first writable CONDA_PKGS_DIRS entry and reads the others), so
  a hostile test cannot poison the cache of later jobs. Its tests keep the network it installs
  with.
- the rattler runner installs the environment itself (trusted code, outside) and runs only the
  test scripts in the sandbox: it gets the sandbox's command prefix (`--sandbox-prefix`), with
  the network cut when TEST_NETWORK is off.
"""

import json
import shutil
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from django.conf import settings

from testing_app.adapters.sandbox import SandboxPolicy
from testing_app.adapters.sandbox import SandboxUnavailable
from testing_app.adapters.sandbox import probe
from testing_app.adapters.sandbox import resolve_user

ISOLATION_OFF = "none"
RATTLER_TEST_FOLDER = "test_tmp"  # the rattler runner's test folder inside the croot


def isolation_required() -> bool:
    """Tests run only sandboxed unless the operator opted out (TEST_ISOLATION=none)."""
    return settings.TEST_ISOLATION != ISOLATION_OFF


def host_isolation() -> tuple[str, str]:
    """(what isolates tests here, why not) for the host's registration: ("bubblewrap 0.8.0 as
    nobody", "") or ("", reason)."""
    if not isolation_required():
        return "", "the operator turned test isolation off (TEST_ISOLATION=none)"
    try:
        return probe(settings.TEST_SANDBOX_BWRAP, settings.TEST_SANDBOX_USER), ""
    except SandboxUnavailable as exc:
        return "", str(exc)


def sandbox_policy(
    *,
    package_path: Path,
    channels: Sequence[str],
    env: Mapping[str, str],
    network: bool,
    installation: Sequence[Path] = (),
) -> SandboxPolicy:
    """The policy of one test; raises SandboxUnavailable when this host cannot isolate."""
    probe(settings.TEST_SANDBOX_BWRAP, settings.TEST_SANDBOX_USER)
    uid, gid = resolve_user(settings.TEST_SANDBOX_USER)
    read_only = [
        package_path,
        *local_channel_paths(channels),
        *python_installation(),
        *installation,
        *settings.TEST_SANDBOX_READ_ONLY,
    ]
    return SandboxPolicy(
        uid=uid,
        gid=gid,
        bwrap=shutil.which(settings.TEST_SANDBOX_BWRAP) or settings.TEST_SANDBOX_BWRAP,
        network=network,
        read_only=tuple(read_only),
        env=dict(env),
    )


def local_channel_paths(channels: Sequence[str]) -> list[Path]:
    """The folders of file:// channels, which the sandbox must see to solve from them."""
    return [Path(unquote(urlparse(url).path)) for url in channels if url.startswith("file://")]


def python_installation() -> list[Path]:
    """This Python's environment and base installation (the rattler runner and conda-build
    stand-ins run on it), as the path it is known by and its real path."""
    paths = []
    for prefix in {sys.prefix, sys.base_prefix}:
        paths += [Path(prefix), Path(prefix).resolve()]
    return paths


def conda_build_installation(binary: str, env: Mapping[str, str]) -> tuple[str, list[Path]]:
    """(absolute path of conda-build, the installation it belongs to: <prefix>/bin/.. ).
    FileNotFoundError when it is not on the job's PATH, as starting it would say."""
    found = shutil.which(binary, path=env.get("PATH"))
    if found is None:
        raise FileNotFoundError(f"No such executable: {binary}")
    path = Path(found)
    return found, [path.parent.parent, path.resolve().parent.parent]


def conda_build_packages_dirs(workspace: Path) -> str:
    """CONDA_PKGS_DIRS for conda-build in the sandbox: its own cache first (written), then the
    host's shared cache (only read)."""
    return f"{workspace / 'pkgs'},{settings.CONDA_PKGS_DIR}"


def rattler_sandbox_options(policy: SandboxPolicy, workspace: Path) -> list[str]:
    """The rattler runner's option carrying the command prefix its test scripts run under; the
    folder they run in is made the sandbox user's."""
    policy.prepare(workspace, RATTLER_TEST_FOLDER)
    return ["--sandbox-prefix", json.dumps(policy.argv([], workspace=workspace))]


def describe(policy: SandboxPolicy) -> str:
    network = "network on" if policy.network else "no network"
    return f"sandbox: bubblewrap as {settings.TEST_SANDBOX_USER} (uid {policy.uid}), {network}"
