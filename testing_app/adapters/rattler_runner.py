"""The rattler runner: test a built conda package without conda, the way conda-build does.

It has conda-build's command line (`--test PKG --override-channels -c URL ... --croot DIR
--extra-deps SPEC ...`) and prints conda-build's markers (TEST START, Nothing to test for,
the install plan, TESTS FAILED, TEST END, All tests passed), so services/conda_runner.py runs it
through the same path as conda-build: download, workspace, log, timeout, classification.

What it does, as conda-build's `build.py::test` (reference/conda.md section 1):
- reads the tests inside the package: conda-build's `info/test/` (run_test.sh/.bat/.py and
  test_time_dependencies.json) or rattler-build's `info/tests/tests.yaml` (script and python
  tests; their requirements are installed together);
- solves the test environment with py-rattler: the package itself (from a private one-file
  channel put first, so the file that was downloaded and checked is the one tested), its test
  requirements, python when there is a run_test.py, and the --extra-deps (PyTorch pin, variant,
  pinned upstream build), for this machine's virtual packages;
- installs it with py-rattler into <croot>/_test_env (packages cached in $CONDA_PKGS_DIRS);
- runs the scripts in the activated environment: `python -s run_test.py`, then
  `bash -e run_test.sh` (`cmd /d /c run_test.bat` on Windows) with PREFIX, SRC_DIR and
  CONDA_BUILD_STATE=TEST set; a TEST_FAILED file left in the test folder also fails it.

A package built by rattler-build (info/tests/tests.yaml) is tested by rattler-build itself
when py-rattler-build is installed (the `rattler-build` extra): `Package.from_file(f)
.run_tests(...)` runs every test as rattler-build does (one environment per test, the test's
cwd under `$PREFIX/etc/conda/test-files/<name>/<idx>`, its interpreter, env,
requirements.build, python_version, PYTHON/SP_DIR/PY_VER, and perl/R/ruby/downstream tests).
`run_tests` takes no extra specs, so the cell's pins go through the channels: the solve above
picks the records the --extra-deps name (PyTorch's build and variant, a pinned upstream build,
python), and each goes into a private channel put first under strict channel priority; its
repodata names the record's own location as `info.base_url` (CEP 15), so nothing is copied.
Without py-rattler-build, the emulation below runs tests.yaml's script and python tests.

Exit codes: 0 passed (or nothing to test), 1 tests failed or environment unsolvable (the solver's
explanation is printed first), 2 infrastructure (unreadable package, channel or install error).

Run as a script (`python rattler_runner.py ...`), so it imports nothing of this project, and
in its own process: rattler's async runtime is not fork-safe (DESIGN.md section 8), and a
subprocess never forks a worker afterwards. `read_package_tests` is also imported by the
install check, which reads the same test requirements.
"""

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from pathlib import PurePosixPath

import yaml
from conda_package_streaming.package_streaming import stream_conda_info

INFO_TEST = PurePosixPath("info/test")
TESTS_YAML = PurePosixPath("info/tests/tests.yaml")
SCRIPT_NAMES = ("run_test.py", "run_test.sh", "run_test.bat")
NOARCH = "noarch"
EXIT_PASSED, EXIT_FAILED, EXIT_INFRASTRUCTURE = 0, 1, 2
PLAN_HEADER = "The following NEW packages will be INSTALLED:"
# How this runner starts a step of the job's log (adapters/log_steps.py, STEP_ANNOUNCEMENT):
# the worker replaces the line with a marker stamped with the time it read it.
STEP = "##[step] "
STEP_NAME_LENGTH = 120


class PackageReadError(Exception):
    """The package file cannot be read as a conda package."""


@dataclass
class PackageTests:
    """What a package says about its tests."""

    index: dict
    # "conda-build" (info/test/), "rattler-build" (info/tests/tests.yaml) or "" (none).
    layout: str = ""
    requirements: list[str] = field(default_factory=list)
    # Files of info/test/ (scripts, test files), by path relative to it.
    files: dict[str, bytes] = field(default_factory=dict)
    # Shell lines of rattler-build's script and python tests, in order.
    commands: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def has_tests(self) -> bool:
        return any(name in self.files for name in SCRIPT_NAMES) or bool(self.commands)

    @property
    def needs_python(self) -> bool:
        return "run_test.py" in self.files or any(c.startswith("python") for c in self.commands)


def read_package_tests(path: Path) -> PackageTests:
    """The index and tests of a .conda or .tar.bz2 file, read from its info part only."""
    index, files, tests_yaml = None, {}, None
    try:
        for tar, member in stream_conda_info(str(path)):
            if not member.isfile():
                continue
            name = _safe_member(member.name)
            if name == PurePosixPath("info/index.json"):
                index = json.loads(_read_member(tar, member))
            elif INFO_TEST in name.parents:
                files[name.relative_to(INFO_TEST).as_posix()] = _read_member(tar, member)
            elif name == TESTS_YAML:
                tests_yaml = _read_member(tar, member)
    except (OSError, ValueError, KeyError, tarfile.TarError, EOFError) as exc:
        raise PackageReadError(f"{path.name}: not a readable conda package: {exc}") from exc
    if not isinstance(index, dict) or not index.get("name"):
        raise PackageReadError(f"{path.name}: no info/index.json with a name")
    _check_subdir(index.get("subdir") or NOARCH, path)
    tests = PackageTests(index=index)
    if tests_yaml is not None:
        _read_rattler_build_tests(tests, tests_yaml)
    elif files:
        tests.layout, tests.files = "conda-build", files
        requirements = files.pop("test_time_dependencies.json", None)
        if requirements is not None:
            tests.requirements = [str(s) for s in json.loads(requirements)]
    return tests


def _safe_member(name: str) -> PurePosixPath:
    """A member's path, refused when it could be written outside the test folder (the same
    rule as packages_app/adapters/conda_names.py; this script imports nothing of the project)."""
    path = PurePosixPath(name)
    if not name or "\0" in name or "\\" in name or path.is_absolute() or ".." in path.parts:
        raise PackageReadError(f"archive member {name!r} points outside its folder")
    return path


def _check_subdir(subdir, path: Path) -> None:
    from rattler import Subdir

    if not isinstance(subdir, str) or subdir not in {str(s) for s in Subdir.all()}:
        raise PackageReadError(f"{path.name}: info/index.json subdir {subdir!r} is not known")


def _read_member(tar, member) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise PackageReadError(f"{member.name}: cannot be read")
    return handle.read()


def _read_rattler_build_tests(tests: PackageTests, text: bytes) -> None:
    """rattler-build's tests.yaml: a list of tests; script and python tests are run."""
    try:
        entries = yaml.safe_load(text) or []
    except yaml.YAMLError as exc:
        raise PackageReadError(f"info/tests/tests.yaml is not YAML: {exc}") from exc
    if not isinstance(entries, list):
        raise PackageReadError("info/tests/tests.yaml is not a list of tests")
    tests.layout = "rattler-build"
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if "script" in entry:
            tests.commands += _script_lines(entry["script"])
            requirements = entry.get("requirements") or {}
            tests.requirements += [str(s) for s in requirements.get("run") or []]
        elif "python" in entry:
            python = entry["python"] or {}
            imports = python.get("imports") or []
            if isinstance(imports, str):
                imports = [imports]
            tests.commands += [f'python -c "import {module}"' for module in imports]
            if python.get("pip_check", True):
                tests.commands.append("python -m pip check")
                tests.requirements.append("pip")
            tests.requirements.append("python")
        else:
            tests.skipped += sorted(entry)


def _script_lines(script) -> list[str]:
    if isinstance(script, dict):
        script = script.get("content", [])
    if isinstance(script, str):
        return [script]
    return [str(line) for line in script or []]


def write_local_channel(package: Path, index: dict, root: Path) -> str:
    """A channel holding only `package`, indexed by rattler's index_fs (this runs in the
    runner's own process), as a file:// URL to put first in the solve."""
    from rattler.index import index_fs  # noqa: PLC0415 - the runner imports rattler lazily

    subdir = index.get("subdir") or NOARCH
    for name in {subdir, NOARCH}:
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(package, root / subdir / package.name)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    return root.resolve().as_uri()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rattler-runner", description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--test", action="store_true", required=True)
    parser.add_argument("-c", "--channel", action="append", default=[])
    parser.add_argument("-O", "--override-channels", action="store_true")
    # The command prefix (JSON list) the test scripts run under: the worker's sandbox
    # (testing_app/adapters/sandbox.py). The environment is installed outside it.
    parser.add_argument("--sandbox-prefix", type=json.loads, default=[])
    parser.add_argument("--croot", required=True)
    parser.add_argument("--extra-deps", nargs="+", default=[])
    parser.add_argument("package", nargs=1)
    return parser.parse_args(argv)


def say(line: str = "") -> None:
    print(line, flush=True)


def step(name: str) -> None:
    say(STEP + name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    package = Path(args.package[0]).resolve()
    croot = Path(args.croot).resolve()
    say(f"TEST START: {package}")
    try:
        tests = read_package_tests(package)
    except PackageReadError as exc:
        say(f"error: {exc}")
        return EXIT_INFRASTRUCTURE
    rattler_build = _rattler_build() if tests.layout == "rattler-build" else None
    if rattler_build is not None and args.sandbox_prefix:
        # py-rattler-build runs the test scripts in this process's own children, outside the
        # host's sandbox: untrusted tests must stay inside it, so this runner's own reading of
        # tests.yaml runs them there instead (docs/operators.md, "Sandbox").
        say("note: tests isolated: tests.yaml run by the rattler runner inside the sandbox")
        rattler_build = None
    if rattler_build is not None:
        path = _rattler_build_path()
        return path.run_rattler_build_tests(
            rattler_build,
            package,
            tests,
            croot,
            args,
            solve=_solve,
            print_plan=_print_plan,
            say=say,
        )
    for kind in tests.skipped:
        say(f"note: the rattler runner does not run {kind!r} tests; skipped")
    if not tests.has_tests:
        say(f"Nothing to test for: {package}")
        return EXIT_PASSED
    say(f"tests: {tests.layout} layout")
    prefix = croot / "_test_env"
    records = _solve(package, tests, croot, args)
    if isinstance(records, int):
        return records
    try:
        _install(records, prefix)
    except Exception as exc:  # noqa: BLE001 - rattler's install errors share no base class
        say(f"error: installing the test environment failed: {exc}")
        return EXIT_INFRASTRUCTURE
    test_dir = croot / "test_tmp"
    code = _run_tests(tests, prefix, test_dir, package, sandbox_prefix=args.sandbox_prefix)
    if code != 0 or (test_dir / "TEST_FAILED").exists():
        say(f"TESTS FAILED: {package.name}")
        return EXIT_FAILED
    say(f"TEST END: {package}")
    say("All tests passed")
    return EXIT_PASSED


def _rattler_build():
    """py-rattler-build's module, or None where the host has not installed it."""
    try:
        import rattler_build  # noqa: PLC0415 - optional (the rattler-build extra)
    except ImportError:
        return None
    return rattler_build


def _rattler_build_path():
    """The sibling module that runs tests.yaml with rattler-build: by its package name when
    this file is imported, by its file name when it runs as a script."""
    try:
        from testing_app.adapters import rattler_build_path  # noqa: PLC0415
    except ImportError:
        import rattler_build_path  # noqa: PLC0415 - the script's own folder is on sys.path
    return rattler_build_path


def stack_settings(environ) -> tuple[str, bool]:
    """The channel stack's priority mode and pip rule, read as conda reads them: the service
    sets CONDA_CHANNEL_PRIORITY and CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY from the one stack
    (selectors/channel_stack_types.py) for both runners. conda's old boolean form is accepted
    (true = flexible, false = disabled); unset means the stack's defaults (strict, no pip)."""
    priority = (environ.get("CONDA_CHANNEL_PRIORITY") or "strict").strip().lower()
    priority = {"true": "flexible", "false": "disabled"}.get(priority, priority)
    if priority not in ("strict", "flexible", "disabled"):
        raise ValueError(f"CONDA_CHANNEL_PRIORITY={priority!r} is not strict, flexible or disabled")
    pip = (environ.get("CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY") or "false").strip().lower()
    return priority, pip in ("true", "1", "yes", "on")


def _solve(package: Path, tests: PackageTests, croot: Path, args):
    """The solved records, or an exit code after printing why there are none."""
    from rattler import ChannelPriority
    from rattler import MatchSpec
    from rattler import VirtualPackage
    from rattler import VirtualPackageOverrides
    from rattler import solve
    from rattler.exceptions import SolverError

    index = tests.index
    try:
        local = write_local_channel(package, index, croot / "local-channel")
    except Exception as exc:  # noqa: BLE001 - rattler's index errors share no base class
        say(f"error: the package could not be indexed: {exc}")
        return EXIT_INFRASTRUCTURE
    specs = [f"{index['name']} =={index['version']} {index['build']}", *tests.requirements]
    if tests.needs_python:
        specs.append("python")
    specs += args.extra_deps
    step("solve the test environment")
    try:
        match_specs = [MatchSpec(spec) for spec in specs]
    except Exception as exc:  # noqa: BLE001 - rattler's parse errors share no base class
        say(f"Could not solve for environment specs: a spec cannot be read: {exc}")
        say(f"TESTS FAILED: {package.name}")
        return EXIT_FAILED
    subdir = index.get("subdir") or NOARCH
    platform = _current_subdir() if subdir == NOARCH else subdir
    say(f"solving for {platform}: {', '.join(specs)}")
    try:
        priority, add_pip = stack_settings(os.environ)
    except ValueError as exc:
        say(f"error: {exc}")
        return EXIT_INFRASTRUCTURE
    say(f"channel priority: {priority}; pip added to python: {add_pip}")
    try:
        virtual = VirtualPackage.detect(VirtualPackageOverrides.from_env())
        return asyncio.run(
            solve(
                sources=[local, *args.channel],
                specs=match_specs,
                platforms=[platform, NOARCH],
                virtual_packages=virtual,
                channel_priority=getattr(ChannelPriority, priority.capitalize()),
                add_pip_as_python_dependency=add_pip,
            )
        )
    except SolverError as exc:
        say(str(exc).strip())
        say(f"TESTS FAILED: {package.name}")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - channel or network trouble: infrastructure
        say(f"error: the channels could not be read: {exc}")
        return EXIT_INFRASTRUCTURE


def _print_plan(records) -> None:
    say(PLAN_HEADER)
    say()
    for record in sorted(records, key=lambda r: r.name.normalized):
        channel = str(record.channel or "").rstrip("/")
        say(f"  {record.name.normalized:<30} {channel}::{record.file_name.rsplit('.', 1)[0]}")
    say()


def _install(records, prefix: Path) -> None:
    from rattler import install

    step("install the test environment")
    _print_plan(records)
    cache = os.environ.get("CONDA_PKGS_DIRS", "").split(os.pathsep)[0] or None
    asyncio.run(install(records, target_prefix=prefix, cache_dir=cache, show_progress=False))


def _run_tests(
    tests: PackageTests, prefix: Path, test_dir: Path, package: Path, *, sandbox_prefix=()
) -> int:
    """Write the test files and the runner script, run it, return its exit code. With a
    sandbox prefix the script runs inside it, given only the variables a test needs."""
    from rattler.shell import ActivationVariables
    from rattler.shell import Shell
    from rattler.shell import activate

    test_dir.mkdir(parents=True, exist_ok=True)
    for relative, content in tests.files.items():
        target = test_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    windows = sys.platform.startswith("win")
    current_path = os.environ.get("PATH", "").split(os.pathsep)
    shell = Shell.cmd_exe if windows else Shell.bash
    activation = activate(prefix, ActivationVariables(None, current_path), shell)
    lines = _test_lines(tests, windows=windows)
    runner = test_dir / ("conda_test_runner.bat" if windows else "conda_test_runner.sh")
    runner.write_text(activation.script + "\n" + "\n".join(lines) + "\n")
    command = (
        ["cmd", "/d", "/c", str(runner)] if windows else ["bash", "-o", "errexit", str(runner)]
    )
    test_env = {
        "PREFIX": str(prefix),
        "SRC_DIR": str(test_dir),
        "CONDA_BUILD_STATE": "TEST",
        "CONDA_BUILD": "1",
        "PKG_NAME": str(tests.index["name"]),
        "PKG_VERSION": str(tests.index["version"]),
        "PKG_BUILDNUM": str(tests.index.get("build_number", 0)),
    }
    say(f"running the tests of {package.name} in {test_dir}")
    if sandbox_prefix:
        # The sandbox clears the environment: the test's variables go in through env(1),
        # which also enters the test folder.
        pairs = [f"{name}={value}" for name, value in test_env.items()]
        command = [*sandbox_prefix, "env", "-C", str(test_dir), *pairs, *command]
        return subprocess.run(command, cwd=test_dir, check=False).returncode  # noqa: S603
    env = {**os.environ, **test_env}
    return subprocess.run(command, cwd=test_dir, env=env, check=False).returncode  # noqa: S603


def _test_lines(tests: PackageTests, *, windows: bool) -> list[str]:
    """The runner script's commands, as conda-build's conda_test_runner writes them: every
    command stops the run on failure (bash -o errexit; on Windows an ERRORLEVEL check). Each
    is announced as a step of the job's log first (named by its first line)."""
    if tests.layout == "rattler-build":
        commands = list(tests.commands)
    else:
        commands = ["python -s run_test.py"] if "run_test.py" in tests.files else []
        if windows and "run_test.bat" in tests.files:
            commands.append("call run_test.bat")
        elif not windows and "run_test.sh" in tests.files:
            commands.append("bash -e run_test.sh")
    if windows:  # cmd's echo has no quoting: the step is named by its number only
        return [
            f"echo {STEP}test {number}\n{command}\nIF %ERRORLEVEL% NEQ 0 exit /B 1"
            for number, command in enumerate(commands, start=1)
        ]
    return [
        f"echo {shlex.quote(STEP + _test_step_name(number, command))}\n{command}"
        for number, command in enumerate(commands, start=1)
    ]


def _test_step_name(number: int, command: str) -> str:
    first = (command.strip().splitlines() or [""])[0].strip()
    if len(first) > STEP_NAME_LENGTH:
        first = first[: STEP_NAME_LENGTH - 1] + "…"
    return f"test {number}: {first}"


def _current_subdir() -> str:
    from rattler.platform import Platform

    return str(Platform.current())


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: rattler's runtime threads may still hold the GIL machinery
    # after a failed solve, and Python then aborts (exit 134) instead of exiting with `status`.
    os._exit(status)
