"""Names that become paths: a repodata subdir, a package file name, an archive member.

Repodata and package files are untrusted input, and these names are joined to folders (the
artifact cache, a channel, a job's croot). Each is checked where it enters, so that no name can
point outside its folder: no `/` (or `\\`) in a file name or subdir, no `..`, nothing absolute,
and a subdir from the set of known platforms (py-rattler's list, which holds conda's).
"""

import functools
from pathlib import PurePosixPath

from rattler import Subdir

PACKAGE_SUFFIXES = (".conda", ".tar.bz2")


class UnsafeName(ValueError):
    """A name that could reach outside its folder, or is not what it claims to be."""


@functools.cache
def known_subdirs() -> frozenset[str]:
    return frozenset(str(subdir) for subdir in Subdir.all())


def check_subdir(subdir: object) -> str:
    """`subdir` when it is a known conda platform (`noarch`, `linux-64`, ...)."""
    if not isinstance(subdir, str) or subdir not in known_subdirs():
        raise UnsafeName(f"subdir {subdir!r} is not a known conda platform")
    return subdir


def check_filename(filename: object) -> str:
    """`filename` when it is a plain package file name: no folder part, no `..`, not hidden."""
    if not isinstance(filename, str) or not filename:
        raise UnsafeName(f"file name {filename!r} is not a name")
    if "/" in filename or "\\" in filename or "\0" in filename:
        raise UnsafeName(f"file name {filename!r} has a folder part")
    if filename.startswith(".") or ".." in filename:
        raise UnsafeName(f"file name {filename!r} is hidden or has '..'")
    if not filename.endswith(PACKAGE_SUFFIXES):
        raise UnsafeName(f"file name {filename!r} is not a .conda or .tar.bz2 file")
    return filename


def check_member(name: str) -> PurePosixPath:
    """An archive member's path when it stays inside the folder it is extracted to."""
    path = PurePosixPath(name)
    if not name or "\0" in name or "\\" in name or path.is_absolute() or ".." in path.parts:
        raise UnsafeName(f"archive member {name!r} points outside its folder")
    return path
