"""Read a large repodata.json record by record, and tell what changed since the last import.

No ORM here. A conda-forge-sized subdir (10^6 records, ~500 MB) cannot be parsed into Python
objects at once within a worker's memory, and a sync where 100 records changed should not
parse 10^6. So the file is memory-mapped and split with msgspec into each record's raw JSON
bytes (a view, no copy, no per-field objects): about 150 bytes of memory per record beside the
mapped file. Each record is identified by a 64-bit BLAKE2 hash of its file name and raw bytes.

The record index, written after an import commits, keeps those hashes and the file names in
one file beside rattler's cache, with a fingerprint of the catalog rows it describes (the
caller's choice: the subdir's revision, which the database moves on every write to its
builds). The next sync compares the new file with it: records whose hash is new are the
changed or added ones, names no longer listed are the removed ones. With no index, or a
fingerprint that no longer matches the catalog, the caller imports the whole file in chunks
instead (`chunks`).

Records that go on to be imported are cut out into small repodata.json files and parsed by
packages_app.adapters.repodata.parse_repodata_file, so every record that enters the catalog
passes the same checks (names that become paths, py-rattler's validation) as any import.
"""

import contextlib
import hashlib
import json
import mmap
import operator
import os
import sys
from array import array
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from itertools import compress
from itertools import filterfalse
from itertools import islice
from itertools import repeat
from pathlib import Path

import msgspec

from packages_app.adapters.conda_names import UnsafeName
from packages_app.adapters.conda_names import check_subdir
from packages_app.adapters.repodata import RepodataError

INDEX_MAGIC = b"conda-distro record index 1\n"
INDEX_NAME = "records.idx"
KEYS = ("packages", "packages.conda")


class _Info(msgspec.Struct):
    subdir: str | None = None


class _Repodata(msgspec.Struct):
    info: _Info | None = None
    packages: dict[str, msgspec.Raw] = {}
    packages_conda: dict[str, msgspec.Raw] = msgspec.field(
        default_factory=dict, name="packages.conda"
    )


@dataclass(frozen=True)
class Delta:
    """What changed against the record index: raw records to import, file names removed."""

    changed: dict[str, dict[str, bytes]]  # key ("packages"/"packages.conda") -> {file: raw}
    removed: list[str]

    @property
    def changed_count(self) -> int:
        return sum(len(records) for records in self.changed.values())


# Names of the index read this many bytes at a time when looking for vanished ones.
NAMES_CHUNK_BYTES = 4 * 2**20
HASH_SLICE_RECORDS = 65_536
# Aligning the old and new hashes (see `align`): equal runs are skipped this many at a time,
# a difference is resolved by looking this far ahead on both sides, and past this many
# unmatched records the files are compared as sets instead.
ALIGN_BLOCK = 4096
ALIGN_WINDOW = 64
ALIGN_MAX_UNMATCHED = 20_000


def record_hash(filename: str, raw) -> int:
    """One record's identity: 64 bits of BLAKE2 over its file name, a NUL, and its raw bytes."""
    return int.from_bytes(
        hashlib.blake2b(filename.encode() + b"\0" + raw, digest_size=8).digest(), "little"
    )


_blake2b_64 = partial(hashlib.blake2b, digest_size=8)
_digest = operator.methodcaller("digest")


def _group_hashes(records: dict, after_slice: Callable[[], None]) -> array:
    """record_hash of every (file name, raw) of `records`, in order. Written as a pipeline of
    C-level iterators (map over built-ins, no Python frame per record): at 10^6 records a
    Python loop around hashlib costs more than the hashing itself."""
    named = map(operator.add, map(str.encode, records), repeat(b"\0"))
    digests = map(_digest, map(_blake2b_64, map(operator.add, named, records.values())))
    out = array("Q")
    # Joined a slice at a time: joining all at once holds 10^6 digest objects (~50 MB).
    while piece := b"".join(islice(digests, HASH_SLICE_RECORDS)):
        out.frombytes(piece)
        after_slice()
    if sys.byteorder != "little":
        out.byteswap()
    return out


def align(old: array, new: array) -> tuple[list[int], list[int]] | None:
    """Positions of `new` and of `old` that the other file does not hold at the matching
    place, walking both in order; None when they are too different to walk (then compare
    them as sets). A channel lists its records in the same (sorted) order from one version
    to the next, so 10^6 records with 100 changes are 100 short gaps between long equal runs:
    the runs are compared a block at a time in C (memoryview equality), and only the gaps
    are looked at in Python. A pair matched here has the same hash, so the same file name
    and bytes; anything unmatched is at worst parsed again or looked up by name."""
    old_view, new_view = memoryview(old), memoryview(new)
    i = j = 0
    new_positions: list[int] = []
    old_positions: list[int] = []
    while i < len(old) and j < len(new):
        step = ALIGN_BLOCK
        while step:  # skip the equal run: whole blocks, then halves, to the first difference
            if old_view[i : i + step] == new_view[j : j + step] and i + step <= len(old):
                i, j = i + step, j + step
            else:
                step //= 2
        if i == len(old) or j == len(new):
            break
        ahead: dict[int, int] = {}
        for offset, value in enumerate(old[i : i + ALIGN_WINDOW]):
            ahead.setdefault(value, offset)
        # The nearest place where both go on equal: a record changed, added or removed here.
        found = min(
            (
                (ahead[value] + offset, ahead[value], offset)
                for offset, value in enumerate(new[j : j + ALIGN_WINDOW])
                if value in ahead
            ),
            default=None,
        )
        if found is None:
            return None
        _, skip_old, skip_new = found
        old_positions.extend(range(i, i + skip_old))
        new_positions.extend(range(j, j + skip_new))
        i, j = i + skip_old, j + skip_new
        if len(old_positions) + len(new_positions) > ALIGN_MAX_UNMATCHED:
            return None
    old_positions.extend(range(i, len(old)))
    new_positions.extend(range(j, len(new)))
    if len(old_positions) + len(new_positions) > ALIGN_MAX_UNMATCHED:
        return None
    return new_positions, old_positions


def _at(items, positions: list[int]) -> Iterator:
    """The items at the given ascending positions of an iterator (skipped over in C)."""
    items, last = iter(items), -1
    for position in positions:
        yield next(islice(items, position - last - 1, None))
        last = position


class RawRepodata:
    """One repodata.json, memory-mapped and split into raw records. Use as a context manager;
    `subdir` is checked (a name that becomes a path) before anything else reads it."""

    def __init__(self, path: Path, *, label: str, expected_subdir: str):
        self.label = label
        self._file = path.open("rb")
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            self._file.close()
            raise RepodataError(f"{label}: not valid JSON (empty file)") from exc
        try:
            decoded = msgspec.json.decode(self._map, type=_Repodata)
        except msgspec.DecodeError as exc:
            self.close()
            raise RepodataError(f"{label}: not valid JSON or not a repodata.json: {exc}") from exc
        self.groups = {"packages": decoded.packages, "packages.conda": decoded.packages_conda}
        subdir = (decoded.info.subdir if decoded.info else None) or expected_subdir
        try:
            check_subdir(subdir)
        except UnsafeName as exc:
            self.close()
            raise RepodataError(f"{label}: info: {exc}") from exc
        self.subdir = subdir
        self.release_pages()

    def release_pages(self) -> None:
        """Drop the mapped file's pages from this process's memory (they stay in the page
        cache; a record read later faults its page back in). Reading the whole file leaves
        it all resident, ~500 MB at conda-forge's size, beside the records' index; a sync
        reads each record once more (hashing) and then only the few that changed."""
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def __enter__(self) -> "RawRepodata":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.groups = {}
        if getattr(self, "_map", None) is not None:
            # A raw record still referenced (a traceback's frame) keeps the mapping until it
            # goes; closing then would hide the error being raised.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        self._file.close()

    @property
    def record_count(self) -> int:
        return sum(len(records) for records in self.groups.values())

    def is_listed(self, filename: str) -> bool:
        return any(filename in records for records in self.groups.values())

    def hashes(self) -> array:
        """Every record's hash, in file order (packages, then packages.conda)."""
        out = array("Q")
        for records in self.groups.values():
            out.extend(_group_hashes(records, after_slice=self.release_pages))
        return out

    def delta(self, index: "RecordIndex", hashes: array) -> Delta:
        """Records whose (file name, raw bytes) the index does not hold, and names it lists
        that this file does not. `hashes` is this file's `hashes()`."""
        aligned = align(index.hashes, hashes)
        if aligned is None:
            return self._delta_by_sets(index, hashes)
        new_positions, old_positions = aligned
        changed: dict[str, dict[str, bytes]] = {}
        start = 0
        for key, records in self.groups.items():
            end = start + len(records)
            picked = [p - start for p in new_positions if start <= p < end]
            changed[key] = {name: bytes(raw) for name, raw in _at(records.items(), picked)}
            start = end
        removed: list[str] = []
        offset = 0
        for names in index.filename_chunks():
            end = offset + len(names)
            picked = [p - offset for p in old_positions if offset <= p < end]
            unlisted = (names[p] for p in picked)
            for records in self.groups.values():
                unlisted = filterfalse(records.__contains__, unlisted)
            removed.extend(unlisted)
            offset = end
        return Delta(changed=changed, removed=removed)

    def _delta_by_sets(self, index: "RecordIndex", hashes: array) -> Delta:
        """`delta` for files that do not align (reordered, or mostly changed): every hash
        looked up in a set of the other file's. Membership tests and selection run in C
        (map / compress), as in hashes()."""
        known = set(index.hashes)
        changed: dict[str, dict[str, bytes]] = {key: {} for key in KEYS}
        position = 0
        for key, records in self.groups.items():
            group = hashes[position : position + len(records)]
            position += len(records)
            is_new = map(operator.not_, map(known.__contains__, group))
            changed[key] = {name: bytes(raw) for name, raw in compress(records.items(), is_new)}
        del known
        return Delta(changed=changed, removed=self._unlisted(index, hashes))

    def _unlisted(self, index: "RecordIndex", hashes: array) -> list[str]:
        """The index's file names this file does not list, in the index's order. Only the
        names of records whose hash this file does not hold (the removed ones and the old
        versions of changed ones: a few) are looked up among this file's names; every other
        record is here byte for byte, name included. The names are decoded a few MiB at a
        time, so the old and new names never all sit in memory as Python strings."""
        present = set(hashes)
        removed: list[str] = []
        position = 0
        for names in index.filename_chunks():
            block = index.hashes[position : position + len(names)]
            position += len(names)
            unlisted = compress(names, map(operator.not_, map(present.__contains__, block)))
            for records in self.groups.values():
                unlisted = filterfalse(records.__contains__, unlisted)
            removed.extend(unlisted)
        return removed

    def chunks(self, size: int) -> Iterator[dict[str, dict[str, bytes]]]:
        """Every record, `size` at a time, grouped by key as in the file."""
        chunk: dict[str, dict[str, bytes]] = {key: {} for key in KEYS}
        count = 0
        for key, records in self.groups.items():
            for filename, raw in records.items():
                chunk[key][filename] = bytes(raw)
                count += 1
                if count == size:
                    yield chunk
                    chunk, count = {key: {} for key in KEYS}, 0
        if count:
            yield chunk

    def snapshot(self, hashes: array) -> "RecordIndex":
        """The index of this file (its fingerprint is set once the import commits)."""
        names = "\n".join(chain.from_iterable(self.groups.values()))
        return RecordIndex(hashes=hashes, names_blob=names.encode(), fingerprint={})


def write_records(path: Path, subdir: str, groups: dict[str, dict[str, bytes]]) -> None:
    """A small repodata.json of the given raw records (the input of parse_repodata_file)."""
    with path.open("wb") as out:
        out.write(b'{"info":{"subdir":' + json.dumps(subdir).encode() + b"}")
        for key in KEYS:
            out.write(b',"' + key.encode() + b'":{')
            entries = (json.dumps(name).encode() + b":" + raw for name, raw in groups[key].items())
            out.write(b",".join(entries))
            out.write(b"}")
        out.write(b"}")


@dataclass
class RecordIndex:
    hashes: array
    names_blob: bytes
    fingerprint: dict

    def filenames(self) -> Iterator[str]:
        return chain.from_iterable(self.filename_chunks())

    def filename_chunks(self, size: int | None = None) -> Iterator[list[str]]:
        """The file names, in order, as lists of about `size` bytes of names each."""
        size = size or NAMES_CHUNK_BYTES
        blob = self.names_blob
        start = 0
        while start < len(blob):
            end = blob.find(b"\n", start + size)
            end = len(blob) if end < 0 else end
            yield blob[start:end].decode().split("\n")
            start = end + 1

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / (INDEX_NAME + ".tmp")
        header = json.dumps({"fingerprint": self.fingerprint, "count": len(self.hashes)})
        with temporary.open("wb") as out:
            out.write(INDEX_MAGIC + header.encode() + b"\n")
            self.hashes.tofile(out)
            out.write(self.names_blob)
        os.replace(temporary, folder / INDEX_NAME)

    @classmethod
    def load(cls, folder: Path, *, fingerprint: dict) -> "RecordIndex | None":
        """The saved index, or None when there is none, it is unreadable, or it describes
        another state of the catalog than `fingerprint`."""
        path = folder / INDEX_NAME
        try:
            with path.open("rb") as source:
                if source.readline() != INDEX_MAGIC:
                    return None
                header = json.loads(source.readline())
                if header.get("fingerprint") != fingerprint:
                    return None
                hashes = array("Q")
                hashes.fromfile(source, header["count"])
                names_blob = source.read()
        except (OSError, ValueError, EOFError, KeyError):
            return None
        # One name per hash, or the delta would pair names with other records' hashes.
        if (names_blob.count(b"\n") + 1 if names_blob else 0) != len(hashes):
            return None
        return cls(hashes=hashes, names_blob=names_blob, fingerprint=fingerprint)

    @staticmethod
    def discard(folder: Path) -> None:
        (folder / INDEX_NAME).unlink(missing_ok=True)
