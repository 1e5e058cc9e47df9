"""A synchronous-facing py-rattler solve: channels + platform + specs -> SolveResult.

Used by installability checks (the promotion gate, the check before a promotion copies, the
checks after it) and meant for the planning side's install checks too. No ORM here.

Fork hazard (reference/libraries.md 1e): rattler's async runtime is not fork-safe. Call
`solve_environment` only inside an RQ work-horse (or a subprocess, or a SimpleWorker that never
forks), never in the web process or in a worker parent that forks horses afterwards.

Specs are parsed by rattler's lenient MatchSpec (so "torchvision 0.18.1" means ==0.18.1 as conda
reads it); a spec or virtual package it cannot read is the caller's error (SolverInputError).
An unsolvable request is a normal answer (ok=False with the solver's explanation); a channel that
cannot be read is an infrastructure problem (SolverUnavailable), unless the caller asks to
solve from the channels that can be read (skip_unreadable): rattler, like conda, fails the whole
solve for one unreadable channel; the result then names each channel left out and why.
"""

import json
import time
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from rattler import BuildString
from rattler import ChannelPriority
from rattler import Gateway
from rattler import GenericVirtualPackage
from rattler import MatchSpec
from rattler import PackageName
from rattler import SourceConfig
from rattler import Version
from rattler import solve
from rattler.exceptions import GatewayError
from rattler.exceptions import InvalidMatchSpecError
from rattler.exceptions import InvalidPackageNameError
from rattler.exceptions import InvalidVersionError
from rattler.exceptions import SolverError

from testing_app.adapters.rattler_sync import run_rattler

# Record fields a candidate channel's repodata.json carries (CEP 34 index.json + channel fields).
CANDIDATE_RECORD_FIELDS = (
    "name",
    "version",
    "build",
    "build_number",
    "depends",
    "constrains",
    "subdir",
    "noarch",
    "track_features",
    "license",
    "license_family",
    "timestamp",
    "md5",
    "sha256",
    "size",
)


_PRIORITIES = {
    "strict": ChannelPriority.Strict,
    "flexible": ChannelPriority.Flexible,
    "disabled": ChannelPriority.Disabled,
}


class SolverInputError(ValueError):
    """A spec, virtual package or platform the solver cannot read: the request is wrong."""


class SolverUnavailable(RuntimeError):
    """A channel could not be read (unreachable, missing, broken repodata): try again later."""


@dataclass(frozen=True)
class SolvedPackage:
    """One package of a solved environment."""

    name: str
    version: str
    build: str
    subdir: str
    channel: str
    filename: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SolveResult:
    """What the solver said: ok with the environment, or not ok with its explanation."""

    ok: bool
    packages: tuple[SolvedPackage, ...]
    explanation: str
    seconds: float
    # (channel URL, why it could not be read) for each channel the solve went without.
    left_out: tuple[tuple[str, str], ...] = ()

    def find(self, name: str) -> SolvedPackage | None:
        return next((p for p in self.packages if p.name == name), None)


def parse_virtual_package(text: str) -> GenericVirtualPackage:
    """`__cuda=12.4`, `__glibc=2.28` or `__osx=13.0=0` (name=version[=build]) as rattler's type."""
    name, _, rest = text.strip().partition("=")
    version, _, build = rest.partition("=")
    if not name.startswith("__") or not version:
        raise SolverInputError(f"virtual package {text!r} is not of the form __name=version")
    try:
        return GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0"))
    except (InvalidVersionError, InvalidPackageNameError) as exc:
        raise SolverInputError(f"virtual package {text!r}: {exc}") from exc


def parse_specs(specs: Iterable[str]) -> list[MatchSpec]:
    """MatchSpec objects (lenient, as conda reads repodata); raises SolverInputError."""
    parsed = []
    for spec in specs:
        try:
            parsed.append(MatchSpec(spec))
        except InvalidMatchSpecError as exc:
            raise SolverInputError(f"spec {spec!r} cannot be read: {exc}") from exc
    return parsed


def solve_environment(
    *,
    channels: Sequence[str],
    platform: str,
    specs: Sequence[str],
    virtual_packages: Sequence[str] = (),
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
    channel_priority: str = "strict",
    pip_as_python_dependency: bool = False,
    skip_unreadable: bool = False,
) -> SolveResult:
    """Solve `specs` for `platform` (+ noarch) from `channels` (file://, http(s):// URLs, highest
    priority first) with the channel stack's priority mode and pip rule (callers pass the one
    stack's; selectors/channel_stack_types.py: conda's default priority is flexible, pixi's and
    this project's strict). Blocking; see the fork note.

    Each call uses a fresh gateway, so a channel re-indexed a moment ago is read as it is now.

    skip_unreadable: when a channel cannot be read (404, 401, timeout, corrupt repodata), solve
    from the others and name it in `left_out`; SolverUnavailable only when none can be read.
    """
    if not channels:
        raise SolverInputError("no channel to solve from")
    if not specs:
        raise SolverInputError("nothing to solve: no spec given")
    match_specs = parse_specs(specs)
    priority = _PRIORITIES.get(channel_priority)
    if priority is None:
        raise SolverInputError(f"channel priority {channel_priority!r} is not one of {_PRIORITIES}")
    virtuals = [parse_virtual_package(v) for v in virtual_packages]
    gateway = Gateway(
        cache_dir=cache_dir, default_config=SourceConfig(sharded_enabled=False), show_progress=False
    )
    started = time.monotonic()
    sources = list(channels)
    left_out: list[tuple[str, str]] = []

    def attempt():
        return run_rattler(
            lambda: solve(
                sources=sources,
                specs=match_specs,
                gateway=gateway,
                platforms=_platforms(platform),
                virtual_packages=virtuals,
                timeout=timedelta(seconds=timeout_s),
                channel_priority=priority,
                add_pip_as_python_dependency=pip_as_python_dependency,
            )
        )

    try:
        try:
            records = attempt()
        except GatewayError as exc:
            if not skip_unreadable:
                raise
            left_out = _unreadable_channels(gateway, sources, platform, match_specs)
            if not left_out:  # every channel reads on its own: not a channel's fault
                raise SolverUnavailable(str(exc).strip()) from exc
            sources = [c for c in sources if c not in {url for url, _ in left_out}]
            if not sources:
                named = "; ".join(f"{url}: {why}" for url, why in left_out)
                raise SolverUnavailable(f"no channel could be read ({named})") from exc
            records = attempt()
    except SolverError as exc:
        seconds = time.monotonic() - started
        return SolveResult(False, (), str(exc).strip(), seconds, tuple(left_out))
    except GatewayError as exc:
        raise SolverUnavailable(str(exc).strip()) from exc
    packages = tuple(
        sorted(
            (
                SolvedPackage(
                    name=record.name.normalized,
                    version=str(record.version),
                    build=str(record.build),
                    subdir=record.subdir,
                    channel=str(record.channel or ""),
                    filename=record.file_name,
                )
                for record in records
            ),
            key=lambda p: p.name,
        )
    )
    return SolveResult(True, packages, "", time.monotonic() - started, tuple(left_out))


def _platforms(platform: str) -> list[str]:
    return [platform, "noarch"] if platform != "noarch" else ["noarch"]


def _unreadable_channels(
    gateway: Gateway, channels: Sequence[str], platform: str, specs: Sequence[MatchSpec]
) -> list[tuple[str, str]]:
    """Each channel that the gateway cannot read on its own, with the reason. Channels read
    here stay in the gateway's cache, so the solve that follows does not fetch them again."""
    unreadable = []
    for channel in channels:
        try:
            run_rattler(
                lambda channel=channel: gateway.query(
                    sources=[channel], platforms=_platforms(platform), specs=specs, recursive=False
                )
            )
        except GatewayError as exc:
            unreadable.append((channel, str(exc).strip() or type(exc).__name__))
    return unreadable


def exact_spec(record: dict) -> str:
    """The spec that selects exactly this record: `name ==version build`."""
    return f"{record['name']} =={record['version']} {record['build']}"


def write_candidate_channel(directory: Path, records: Iterable[dict]) -> str:
    """Write a channel holding only `records` (repodata only, no package files) and return its
    file:// URL. Put first in the channel list, it makes the solver see candidate builds that
    are not in any channel users read, and nothing else of the channel they came from.

    Each record needs "fn" (the file name) and the fields of CANDIDATE_RECORD_FIELDS it has.
    """
    directory.mkdir(parents=True, exist_ok=True)
    by_subdir: dict[str, dict] = {"noarch": {}}
    for record in records:
        filename = record["fn"]
        subdir = record["subdir"]
        entry = {k: record[k] for k in CANDIDATE_RECORD_FIELDS if record.get(k) not in (None, "")}
        entry.setdefault("depends", [])
        by_subdir.setdefault(subdir, {})[filename] = entry
    # Written here, not by rattler's index_fs: index_fs indexes package files present in a
    # folder, and this channel has none (the records come from the database).
    for subdir, entries in by_subdir.items():
        (directory / subdir).mkdir(exist_ok=True)
        repodata = {
            "info": {"subdir": subdir},
            "packages": {fn: r for fn, r in entries.items() if fn.endswith(".tar.bz2")},
            "packages.conda": {fn: r for fn, r in entries.items() if fn.endswith(".conda")},
            "repodata_version": 1,
        }
        (directory / subdir / "repodata.json").write_text(json.dumps(repodata))
    return directory.resolve().as_uri()
