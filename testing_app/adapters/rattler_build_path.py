"""The rattler runner's path for packages built by rattler-build: their info/tests/tests.yaml is
run by rattler-build itself (py-rattler-build, the `rattler-build` extra), not emulated.

`Package.from_file(f).run_tests(...)` runs every test as rattler-build does: one environment
per test, the script's cwd under `$PREFIX/etc/conda/test-files/<name>/<idx>` with its `files:`,
its interpreter and env, requirements.build, python tests with python_version, imports and
pip check, PYTHON/SP_DIR/PY_VER, and perl/R/ruby/downstream tests. It takes no extra specs, so
the cell's pins (PyTorch's build and variant, a pinned upstream build, python) go through the
channels: the rattler runner's solve picks the records the --extra-deps name, and each goes into
a private channel put first under strict channel priority. That channel's repodata names the
record's own location as `info.base_url` (CEP 15), so no package file is copied.

Imported by adapters/rattler_runner.py (also when it runs as a script); imports nothing of this
project and nothing that is not installed with py-rattler.
"""

import json
from pathlib import Path

NOARCH = "noarch"
EXIT_PASSED, EXIT_FAILED, EXIT_INFRASTRUCTURE = 0, 1, 2


RATTLER_BUILD_SETUP_FAILED = "failed to setup test environment"
# The rattler runner's step request (rattler_runner.STEP): the worker stamps the line.
STEP = "##[step] "


class _LogPrinter:
    """py-rattler-build's progress callback: its log lines go to stdout as they come, so the
    job's live log and timeout see the tests run."""

    def __init__(self, say):
        self.say = say
        self.printed = 0

    def on_log(self, event) -> None:
        for line in str(event.message).splitlines() or [""]:
            self.say(line)
        self.printed += 1

    def on_download_start(self, event) -> None:
        self.say(f"downloading {event.url}")

    def on_download_progress(self, event) -> None:
        pass

    def on_download_complete(self, event) -> None:
        pass

    def on_build_step(self, event) -> None:
        self.say(f"[{event.step_name}] {event.message}")


def run_rattler_build_tests(rattler_build, package: Path, tests, croot: Path, args, **runner):
    """Run tests.yaml with rattler-build itself, the cell's pins expressed through channels.
    `runner` gives the rattler runner's solve(package, tests, croot, args), print_plan(records)
    and say(line); returns the runner's exit code."""
    solve, print_plan, say = runner["solve"], runner["print_plan"], runner["say"]
    try:
        built = rattler_build.Package.from_file(str(package))
        count = built.test_count
    except Exception as exc:  # noqa: BLE001 - py-rattler-build's errors share no base class
        say(f"error: rattler-build cannot read {package.name}: {exc}")
        return EXIT_INFRASTRUCTURE
    version = rattler_build.rattler_build_version()
    say(f"tests: rattler-build layout, {count} test(s), run by rattler-build {version}")
    if not count:
        say(f"Nothing to test for: {package}")
        return EXIT_PASSED
    records = solve(package, tests, croot, args)
    if isinstance(records, int):
        return records
    print_plan(records)
    pinned = _pinned_names(args.extra_deps) - {tests.index["name"]}
    channels = [*write_pin_channels(records, pinned, croot / "pins"), *args.channel]
    say(f"channels, strict priority: {', '.join(channels)}")
    printer = _LogPrinter(say)
    results = []
    try:
        # One test at a time (rattler-build makes an environment per test either way), so that
        # each is a step of the job's log with its own start and duration.
        for index, test in enumerate(built.tests):
            kind = type(test).__name__.removesuffix("Test").lower() or "test"
            say(f"{STEP}test {index + 1} of {count}: {kind} (rattler-build)")
            results.append(
                built.run_test(
                    index, channel=channels, channel_priority="strict", progress_callback=printer
                )
            )
    except Exception as exc:  # noqa: BLE001 - as above
        say(f"error: rattler-build could not run the tests: {exc}")
        return EXIT_INFRASTRUCTURE
    output = max((list(r.output) for r in results), key=len, default=[])
    if not printer.printed:  # no live log: print what rattler-build collected
        for line in output:
            say(line)
    failed = [r.test_index for r in results if not r.success]
    if failed and any(RATTLER_BUILD_SETUP_FAILED in line for line in output):
        say(f"error: rattler-build {RATTLER_BUILD_SETUP_FAILED} (test {failed[0]})")
        return EXIT_INFRASTRUCTURE
    if failed or len(results) < count:
        say(f"tests failed: {', '.join(map(str, failed)) or 'not all tests ran'}")
        say(f"TESTS FAILED: {package.name}")
        return EXIT_FAILED
    say(f"TEST END: {package}")
    say("All tests passed")
    return EXIT_PASSED


def _pinned_names(extra_deps: list[str]) -> set[str]:
    from rattler import MatchSpec  # noqa: PLC0415 - the runner imports rattler lazily

    names = set()
    for spec in extra_deps:
        try:
            names.add(MatchSpec(spec).name.normalized)
        except Exception:  # noqa: BLE001, S112 - an unreadable spec already failed the solve
            continue
    return names


def write_pin_channels(records, names: set[str], root: Path) -> list[str]:
    """One private channel per source (channel, subdir) of the solved records named in
    `names`, each holding exactly those records; `info.base_url` points at where the files
    are, so the package files stay where they are. file:// URLs, in a stable order."""
    groups: dict[tuple[str, str], list] = {}
    for record in records:
        if record.name.normalized in names:
            base = str(record.url).rsplit("/", 1)[0] + "/"
            groups.setdefault((base, record.subdir), []).append(record)
    # Written here, not by rattler's index_fs: index_fs indexes package files present in a
    # folder, and these channels hold none (base_url points at the files, possibly remote).
    urls = []
    for number, ((base, subdir), members) in enumerate(sorted(groups.items())):
        channel = root / f"pin-{number}"
        for name in sorted({subdir, NOARCH}):
            repodata = {"info": {"subdir": name}, "packages": {}, "packages.conda": {}}
            repodata["repodata_version"] = 2
            if name == subdir:
                repodata["info"]["base_url"] = base
                for record in members:
                    entry = json.loads(record.to_json())
                    for key in ("fn", "url", "channel"):
                        entry.pop(key, None)
                    key = "packages.conda" if record.file_name.endswith(".conda") else "packages"
                    repodata[key][record.file_name] = entry
            (channel / name).mkdir(parents=True, exist_ok=True)
            (channel / name / "repodata.json").write_text(json.dumps(repodata))
        urls.append(channel.resolve().as_uri())
    return urls
