"""A conda channel in a local directory: place a package file, re-index, all atomically.

The promotion backend for targets with a file:// URL. No ORM here.

Readers (conda, rattler, a web server in front of the directory) must never see a half-written
package or repodata.json: files are written under a temporary name in the same directory and
renamed into place. Re-indexing runs rattler's `index_fs` on a private copy of the subdir
(hard links to the package files plus the current repodata.json, which lets rattler reuse the
records it already has) and then renames each produced file over the published one. An
exclusive lock on `<channel>/.promotion.lock` serialises writers on one machine.

Fork hazard: `index_fs` is async rattler; call these functions only inside an RQ work-horse,
a SimpleWorker or a subprocess, never in the web process or a worker parent.
"""

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from rattler import Subdir
from rattler.index import index_fs

from packages_app.adapters.conda_names import UnsafeName
from packages_app.adapters.conda_names import check_filename
from packages_app.adapters.conda_names import check_subdir
from testing_app.adapters.rattler_sync import run_rattler

LOCK_NAME = ".promotion.lock"
# Files index_fs produces per subdir that readers use; each is renamed into place.
INDEX_FILES = ("repodata.json", "repodata.json.zst")
PACKAGE_SUFFIXES = (".conda", ".tar.bz2")
CHUNK_BYTES = 1024 * 1024


class LocalChannelError(Exception):
    """The file could not be placed or indexed. `retryable` is False when another attempt
    cannot help (a different file of that name is already published, a checksum mismatch)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class PlacedFile:
    path: Path
    already_present: bool


def channel_root(url: str) -> Path:
    """The directory of a file:// channel URL."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise LocalChannelError(f"{url} is not a file:// channel")
    return Path(unquote(parsed.path))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def channel_lock(root: Path) -> Iterator[None]:
    """Exclusive writer lock of one channel directory (blocks until it is free)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_channel(root: Path) -> None:
    """Make `root` a valid, possibly empty channel (conda requires noarch/repodata.json)."""
    if (root / "noarch" / "repodata.json").is_file():
        return
    with channel_lock(root):
        if not (root / "noarch" / "repodata.json").is_file():
            _reindex_locked(root, ["noarch"])


def place_package(
    *, source: Path, root: Path, subdir: str, filename: str, sha256: str
) -> PlacedFile:
    """Copy `source` to `<root>/<subdir>/<filename>` and re-index that subdir.

    Idempotent: a file already there with the same sha256 is left alone (and the index is
    refreshed, in case an earlier attempt died between copy and index). A different file of
    that name is never overwritten: what users downloaded must not change under them.
    """
    try:  # both come from repodata: untrusted names that become a path in the channel
        check_subdir(subdir)
        check_filename(filename)
    except UnsafeName as exc:
        raise LocalChannelError(f"refusing to place {subdir}/{filename}, unsafe: {exc}") from exc
    if not source.is_file():
        raise LocalChannelError(f"source file {source} does not exist", retryable=True)
    if sha256 and sha256_of(source) != sha256.lower():
        raise LocalChannelError(f"{source} does not match the build's sha256 {sha256}")
    with channel_lock(root):
        target = root / subdir / filename
        already = target.is_file()
        if already and sha256_of(target) != sha256_of(source):
            raise LocalChannelError(
                f"{subdir}/{filename} is already in the target channel with other contents; "
                "a published file is never replaced"
            )
        if not already:
            _atomic_copy(source, target)
        _reindex_locked(root, sorted({subdir, "noarch"}))
    return PlacedFile(path=target, already_present=already)


@dataclass(frozen=True)
class IncomingFile:
    """A package file to publish: where it is now, and where it goes in the channel."""

    source: Path
    subdir: str
    filename: str
    sha256: str


def publish_files(
    *, root: Path, files: list[IncomingFile], verify: Callable[[Path], str] | None = None
) -> list[PlacedFile]:
    """Publish a set of package files all at once, or none of them.

    1. Every source is checked (a safe name, present, its sha256) and none may clash with a
       different published file of the same name: nothing is touched before all pass.
    2. Under the channel lock, a private mirror of each affected subdir (hard links to the
       published files and the current repodata.json) receives every new file, copied and its
       sha256 verified again, and is indexed once.
    3. `verify(mirror_root)` may refuse: it sees the channel exactly as it would be published
       (the promotion solves the install sets against it). A refusal raises.
    4. The switch: the new package files are renamed into the published subdirs (readers do not
       see them: no repodata lists them yet), then each subdir's repodata is renamed over the
       published one (os.replace: atomic per file).
    Any failure before the switch leaves the published channel exactly as it was (the mirror
    is deleted); the same call again resumes, files already published counting as present.
    """
    for incoming in files:
        _check_incoming(incoming)
    subdirs = sorted({f.subdir for f in files} | {"noarch"})
    with channel_lock(root), tempfile.TemporaryDirectory(prefix=".publish-", dir=root) as scratch:
        placed = []
        for incoming in files:
            target = root / incoming.subdir / incoming.filename
            already = target.is_file()
            if already and sha256_of(target) != incoming.sha256.lower():
                raise LocalChannelError(
                    f"{incoming.subdir}/{incoming.filename} is already in the target channel "
                    "with other contents; a published file is never replaced"
                )
            placed.append(PlacedFile(path=target, already_present=already))
        mirror = Path(scratch)
        for subdir in subdirs:
            _mirror_subdir(root / subdir, mirror / subdir)
        for incoming, done in zip(files, placed, strict=True):
            if not done.already_present:
                copy = mirror / incoming.subdir / incoming.filename
                _atomic_copy(incoming.source, copy)
                if sha256_of(copy) != incoming.sha256.lower():
                    raise LocalChannelError(
                        f"{incoming.filename}: the copy does not match sha256 {incoming.sha256}",
                        retryable=True,
                    )
        _index_mirror(mirror, subdirs)
        refusal = verify(mirror) if verify is not None else ""
        if refusal:
            raise LocalChannelError(refusal, retryable=False)
        # The switch: package files first (unlisted, so invisible), then the indexes.
        for incoming, done in zip(files, placed, strict=True):
            if not done.already_present:
                done.path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(mirror / incoming.subdir / incoming.filename, done.path)
        for subdir in subdirs:
            (root / subdir).mkdir(parents=True, exist_ok=True)
            for name in INDEX_FILES:
                produced = mirror / subdir / name
                if produced.is_file():
                    os.replace(produced, root / subdir / name)
    return placed


def index_files(*, root: Path, files: list[IncomingFile]) -> str:
    """A scratch channel at `root` holding exactly these files (sha256 verified), indexed:
    what a solve "from the files about to be published" reads. Returns its file:// URL."""
    for incoming in files:
        _check_incoming(incoming)
        target = root / incoming.subdir / incoming.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(incoming.source, target)
        except OSError:
            shutil.copy2(incoming.source, target)
    subdirs = sorted({f.subdir for f in files} | {"noarch"})
    for subdir in subdirs:
        (root / subdir).mkdir(parents=True, exist_ok=True)
    _index_mirror(root, subdirs)
    return root.as_uri()


def _check_incoming(incoming: IncomingFile) -> None:
    if Path(incoming.filename).name != incoming.filename or not incoming.filename.endswith(
        PACKAGE_SUFFIXES
    ):
        raise LocalChannelError(f"refusing unsafe package file name {incoming.filename!r}")
    if not incoming.source.is_file():
        raise LocalChannelError(
            f"source file {incoming.source} of {incoming.filename} does not exist", retryable=True
        )
    if incoming.sha256 and sha256_of(incoming.source) != incoming.sha256.lower():
        raise LocalChannelError(
            f"{incoming.source} does not match the build's sha256 {incoming.sha256}"
        )


def _index_mirror(mirror: Path, subdirs: list[str]) -> None:
    """One index_fs run over the mirror's subdirs."""
    for subdir in subdirs:
        (mirror / subdir).mkdir(parents=True, exist_ok=True)
    try:
        run_rattler(partial(index_fs, mirror, write_zst=True, write_shards=False, force=False))
    except Exception as exc:  # rattler raises its own exception types from Rust
        raise LocalChannelError(f"indexing failed: {exc}", retryable=True) from exc


def reindex(root: Path, *, subdirs: Iterable[str]) -> None:
    """Re-index `subdirs` of the channel under its lock (see the module docstring)."""
    with channel_lock(root):
        _reindex_locked(root, sorted(set(subdirs) | {"noarch"}))


def _atomic_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _reindex_locked(root: Path, subdirs: list[str]) -> None:
    """Index a private mirror of each subdir, then rename the results over the published ones."""
    for subdir in subdirs:
        (root / subdir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".reindex-", dir=root) as scratch:
            mirror = Path(scratch)
            _mirror_subdir(root / subdir, mirror / subdir)
            (mirror / "noarch").mkdir(exist_ok=True)
            try:
                run_rattler(
                    partial(
                        index_fs,
                        mirror,
                        target_platform=Subdir(subdir),
                        write_zst=True,
                        write_shards=False,
                        force=False,
                    )
                )
            except Exception as exc:  # rattler raises its own exception types from Rust
                raise LocalChannelError(f"indexing {subdir} failed: {exc}", retryable=True) from exc
            for name in INDEX_FILES:
                produced = mirror / subdir / name
                if produced.is_file():
                    os.replace(produced, root / subdir / name)


def _mirror_subdir(published: Path, mirror: Path) -> None:
    """Hard links to the published package files (copies across file systems) and a copy of
    the current repodata.json, from which index_fs reuses the records it already knows."""
    mirror.mkdir(parents=True)
    if not published.is_dir():
        return  # a subdir the channel does not have yet
    for entry in published.iterdir():
        if entry.is_file() and entry.name.endswith(PACKAGE_SUFFIXES):
            try:
                os.link(entry, mirror / entry.name)
            except OSError:
                shutil.copy2(entry, mirror / entry.name)
    current = published / "repodata.json"
    if current.is_file():
        shutil.copy2(current, mirror / "repodata.json")
