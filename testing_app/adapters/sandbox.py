"""The test sandbox: turn a runner's command line into one that runs isolated from the worker.

Every package under test is untrusted code. Its test phase runs through bubblewrap (Debian
`bubblewrap`), as an unprivileged user distinct from the worker's, with:
- its own PID, IPC and UTS namespaces and a private /proc, so /proc/<worker pid>/environ and
  every other process of the host are out of sight;
- the system (/usr, /etc and the usual merged-/usr links) read-only, a private /tmp, and only
  its workspace writable; the runner's own installation, the package file and local channels
  visible read-only; nothing else of the host (not the worker's home, project, logs or keys);
- the GPU device nodes (/dev/nvidia*, /dev/dri) passed through;
- an environment built from an allow-list (`allowed_environment`), never inherited whole;
- optionally no network at all (`network=False`); the rattler runner instead cuts the network
  of its test scripts only, once their environment is installed (`NO_NETWORK_PREFIX`).

Two ways to become the sandbox user (`SandboxPolicy.uid/gid`):
- the worker runs as root: bwrap mounts as root, then `setpriv` inside the sandbox drops to the
  user with no_new_privs set (setuid binaries in /usr stay inert) and no capabilities left;
- the worker runs as an ordinary user: `sudo -n -u USER bwrap ...` (one sudoers line, shipped in
  docs/operators.md); bwrap then uses an unprivileged user namespace.

No Django here: services/conda_runner.py decides the paths and the settings.
"""

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

# Environment variables a test may see, by exact name or by prefix. Everything else of the
# worker's environment (credentials, service URLs, settings) stays outside.
ALLOWED_VARIABLES = frozenset(
    {
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TERM",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "ROCR_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "CONDA_PKGS_DIRS",
        "CONDA_SUBDIR",
        "PYTHONUNBUFFERED",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
ALLOWED_PREFIXES = ("CONDA_OVERRIDE_",)
# Merged-/usr systems link these to usr/...; older ones have real folders.
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
SYSTEM_READ_ONLY = ("/usr", "/etc", "/opt")
GPU_DEVICE_GLOBS = ("nvidia*", "dri", "nvidia-caps", "kfd")
# What the rattler runner puts before a test script to take its network away: a fresh user
# and network namespace (only a loopback), which an unprivileged process may create.
NO_NETWORK_PREFIX = ("unshare", "--user", "--net", "--")


class SandboxUnavailable(Exception):
    """This host cannot isolate tests (no bubblewrap, no sandbox user, no namespaces)."""


# The sandbox's own temporary folders (tmpfs, gone with it).
PRIVATE_TMP = ("/tmp", "/var/tmp")  # noqa: S108


def allowed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` a test may see (an allow-list, not a deny-list)."""
    return {
        name: value
        for name, value in environ.items()
        if name in ALLOWED_VARIABLES or name.startswith(ALLOWED_PREFIXES)
    }


@dataclass(frozen=True)
class SandboxPolicy:
    """Who the test runs as and what it may see."""

    uid: int
    gid: int
    bwrap: str = "bwrap"
    network: bool = True
    # Visible read-only at the same path: the runner's installation, the package, channels.
    read_only: tuple[Path, ...] = ()
    # Extra writable paths besides the workspace (none by default).
    writable: tuple[Path, ...] = ()
    dev_root: Path = Path("/dev")
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def argv(self, command: list[str], *, workspace: Path) -> list[str]:
        """`command` wrapped: run it in `workspace` inside the sandbox."""
        args = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "sandbox",
        ]
        if not self.network:
            args.append("--unshare-net")
        for folder in SYSTEM_READ_ONLY:
            if Path(folder).is_dir():
                args += ["--ro-bind", folder, folder]
        for name in SYSTEM_LINKS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        # Private temporary folders, writable by the sandbox user like a host's (sticky, 1777):
        # bubblewrap would make a tmpfs 0755, owned by root, and TMPDIR points there.
        args += ["--proc", "/proc", "--dev", "/dev"]
        for folder in PRIVATE_TMP:
            args += ["--perms", "1777", "--tmpfs", folder]
        args += gpu_device_args(self.dev_root)
        made: set[Path] = set()
        for path in _unique(self.read_only):
            if path.exists():
                args += _parent_folders(path, made)
                args += ["--ro-bind", str(path), str(path)]
        for path in _unique([*self.writable, workspace]):
            args += _parent_folders(path, made)
            args += ["--bind", str(path), str(path)]
        args += ["--clearenv"]
        for name, value in sorted(self.environment(workspace).items()):
            args += ["--setenv", name, value]
        args += ["--chdir", str(workspace)]
        if self.as_root:
            # bwrap mounts as root; the test itself runs as the sandbox user, no privileges.
            drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
            drop += ["--no-new-privs", "--inh-caps=-all", "--"]
            return [self.bwrap, *args, "--", *drop, *command]
        if os.geteuid() == self.uid:
            raise SandboxUnavailable("the sandbox user is the worker's own user")
        user = pwd.getpwuid(self.uid).pw_name
        return ["sudo", "-n", "-u", user, "--", self.bwrap, *args, "--", *command]

    def environment(self, workspace: Path) -> dict[str, str]:
        env = allowed_environment(self.env)
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        # The test's home and temporary files live in its own workspace or private /tmp.
        env["HOME"] = str(workspace / "home")
        env["TMPDIR"] = "/tmp"  # noqa: S108 - the sandbox's private tmpfs
        return env

    def prepare(self, workspace: Path, *subfolders: str) -> None:
        """Create the workspace (and `subfolders` of it) so that the sandbox user can write
        there: owned by it when the worker is root; else shared through the group (sudo way)."""
        folders = [workspace, workspace / "home", *(workspace / name for name in subfolders)]
        for path in folders:
            path.mkdir(parents=True, exist_ok=True)
            if self.as_root:
                os.chown(path, self.uid, self.gid)
                path.chmod(0o700)
            else:
                path.chmod(0o2770)


def gpu_device_args(dev_root: Path = Path("/dev")) -> list[str]:
    """--dev-bind for every GPU device node of this machine (NVIDIA, DRM, ROCm)."""
    args = []
    for pattern in GPU_DEVICE_GLOBS:
        for path in sorted(dev_root.glob(pattern)):
            target = Path("/dev") / path.relative_to(dev_root)
            args += ["--dev-bind", str(path), str(target)]
    return args


def _parent_folders(path: Path, made: set[Path]) -> list[str]:
    """--dir for the folders above a mount point, traversable by the sandbox user (bwrap run
    as root would create them 0700); the system folders already mounted are left alone."""
    args = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made or _under_system(parent):
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _under_system(path: Path) -> bool:
    if str(path) in PRIVATE_TMP:  # mounted already, with its own permissions
        return True
    return any(
        path == Path(root) or Path(root) in path.parents
        for root in (*SYSTEM_READ_ONLY, "/proc", "/dev")
    )


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(str(path), path)
    return list(seen.values())


def resolve_user(name: str) -> tuple[int, int]:
    """(uid, gid) of the sandbox user; SandboxUnavailable when it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxUnavailable(f"no user {name!r} on this host") from None
    if entry.pw_uid == 0:
        raise SandboxUnavailable(f"the sandbox user {name!r} is root")
    return entry.pw_uid, entry.pw_gid


@functools.cache
def probe(bwrap: str = "bwrap", user: str = "nobody") -> str:
    """'bubblewrap <version> as <user>' when this host can isolate a test; raises
    SandboxUnavailable with the reason when it cannot. Starts one real sandbox to find out."""
    path = shutil.which(bwrap)
    if path is None:
        raise SandboxUnavailable(f"{bwrap} is not installed (Debian: apt-get install bubblewrap)")
    uid, gid = resolve_user(user)
    policy = SandboxPolicy(uid=uid, gid=gid, bwrap=path, env={"PATH": "/usr/bin:/bin"})
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as folder:
        workspace = Path(folder)
        policy.prepare(workspace)
        command = policy.argv(["id", "-u"], workspace=workspace)
        try:
            result = subprocess.run(  # noqa: S603 - fixed argument list
                command, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"{bwrap} could not start: {exc}") from exc
    if result.returncode != 0 or result.stdout.strip() != str(uid):
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SandboxUnavailable(f"{bwrap} failed: {reason[0]}")
    version = subprocess.run(  # noqa: S603 - fixed argument list
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    return f"bubblewrap {version[-1] if version else '?'} as {user}"
