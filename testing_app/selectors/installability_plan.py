"""What an installability check solves: on which platforms, with which install sets and specs.

Shared by the gate (which checks it expects) and the installability service (which runs them).
"""

from django.conf import settings
from rattler import Version

from packages_app.lint.torch_releases import admitted_torch_releases
from packages_app.models import Build
from packages_app.models import Channel
from testing_app.adapters.solver import exact_spec

# The label of the check that solves the candidates by themselves.
ALONE = "alone"
# Names pinned to a PyTorch release's own versions in the after-promotion checks.
RELEASE_PINNED = {
    "pytorch": "version",
    "torchvision": "torchvision_version",
    "torchaudio": "torchaudio_version",
}


def subject_key(builds: list[Build]) -> str:
    """ "build:<id>" for one build, "set:<id>,<id>,..." for a coordinated set."""
    ids = sorted(b.pk for b in builds)
    return f"build:{ids[0]}" if len(ids) == 1 else "set:" + ",".join(str(i) for i in ids)


def install_sets() -> list[list[str]]:
    return [list(names) for names in settings.INSTALL_SETS if names]


def set_label(names: list[str]) -> str:
    return " ".join(names)


def check_labels() -> list[str]:
    """The checks per platform: the candidates alone, then with each install set."""
    return [ALONE, *(set_label(names) for names in install_sets())]


def required_subdirs(builds: list[Build], inputs) -> list[str]:
    """Platforms the candidates must install on: their own subdirs; for noarch-only sets, the
    platforms the PyTorch releases they admit ship (every known platform if none)."""
    subdirs = {b.subdir for b in builds if b.subdir != "noarch"}
    if subdirs:
        return sorted(subdirs)
    for build in builds:
        try:
            admitted = admitted_torch_releases(build, inputs.releases)
        except ValueError:
            admitted = []
        for release in admitted:
            subdirs.update(p.subdir for p in inputs.release_platforms[release.pk])
    return sorted(subdirs or inputs.platform_by_subdir)


def candidate_record(build: Build) -> dict:
    """The repodata record of a build, as write_candidate_channel wants it."""
    return {
        "fn": build.filename,
        "name": build.name,
        "version": build.version,
        "build": build.build_string,
        "build_number": build.build_number,
        "depends": list(build.depends or ()),
        "constrains": list(build.constrains or ()),
        "subdir": build.subdir,
        "noarch": build.noarch,
        "track_features": build.track_features,
        "license": build.license,
        "license_family": build.license_family,
        "timestamp": int(build.timestamp.timestamp() * 1000) if build.timestamp else None,
        "md5": build.md5,
        "sha256": build.sha256,
        "size": build.size,
    }


def candidate_specs(builds: list[Build], label: str) -> list[str]:
    """Exact specs of the candidates, plus the install set's other names (unpinned: the solver
    picks versions that go with the candidates)."""
    specs = [exact_spec(candidate_record(b)) for b in builds]
    if label != ALONE:
        names = {b.name for b in builds}
        specs += [name for name in label.split() if name not in names]
    return specs


def release_set_specs(names: list[str], release) -> list[str]:
    """An install set pinned to one PyTorch release (after a promotion: what users install)."""
    specs = []
    for name in names:
        attribute = RELEASE_PINNED.get(name)
        version = getattr(release, attribute, "") if attribute else ""
        specs.append(f"{name} =={version}" if version else name)
    return specs


def pytorch_versions_by_subdir(channel_urls: list[str]) -> dict[str, set[str]]:
    """subdir -> the versions of the live `pytorch` records the catalog holds from the channels
    an after-promotion check solves from (one query)."""
    urls = {url.rstrip("/") for url in channel_urls}
    channel_ids = [c.pk for c in Channel.objects.all() if c.base_url.rstrip("/") in urls]
    found: dict[str, set[str]] = {}
    rows = (
        Build.objects.exclude(state=Build.State.WITHDRAWN)
        .filter(name="pytorch", channel_id__in=channel_ids)
        .values_list("subdir", "version")
        .distinct()
    )
    for subdir, version in rows:
        found.setdefault(subdir, set()).add(version)
    return found


def missing_release_build(version: str, subdir: str, known: dict[str, set[str]]) -> str:
    """Why an install set pinned to PyTorch `version` cannot be solved on `subdir`: the stack's
    records list PyTorch there, but not that version; "" when it may be solvable. A platform
    with no PyTorch record at all decides nothing (its channels may not be read yet): the
    solver is asked."""
    versions = known.get(subdir, set()) | known.get("noarch", set())
    if not versions:
        return ""
    wanted = Version(version)
    if any(Version(v) == wanted for v in versions):
        return ""
    newest = max(versions, key=Version)
    others = f"{len(versions)} other version" + ("s" if len(versions) > 1 else "")
    return (
        f"no pytorch {version} build for {subdir} in the channel stack "
        f"(it holds {others}, newest {newest})"
    )
