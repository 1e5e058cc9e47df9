"""Read a large repodata.json record by record, and tell what changed since the last import.

No ORM here. A conda-forge-sized subdir (10^6 records, ~500 MB) cannot be parsed into Python
objects at once within a worker's memory, and a sync where 100 records changed should not
parse 10^6. So the file is memory-mapped and split with msgspec into each record's raw JSON
bytes (a view, no copy, no per-field objects): about 150 bytes of memory per record beside the
mapped file. Each record is identified by a 64-bit BLAKE2 hash of its file name and raw bytes.

The record index, written after an import commits, keeps those hashes and the file names in
one file beside rattler's cache, with a fingerprint of the catalog rows it describes (the
caller's choice: count and last change of the subdir's builds). The next sync compares the
new file with it: records whose hash is new are the changed or added ones, names no longer
listed are the removed ones. With no index, or a fingerprint that no longer matches the
catalog, the caller imports the whole file in chunks instead (`chunks`).

Records that go on to be imported are cut out into small repodata.json files and parsed by
packages_app.adapters.repodata.parse_repodata_file, so every record that enters the catalog
passes the same checks (names that become paths, py-rattler's validation) as any import.
"""

import contextlib
import hashlib
import json
import mmap
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
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


def record_hash(filename: str, raw) -> int:
    return int.from_bytes(
        hashlib.blake2b(filename.encode() + b"\0" + raw, digest_size=8).digest(), "little"
    )


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
            out.extend(record_hash(filename, raw) for filename, raw in records.items())
        return out

    def delta(self, index: "RecordIndex", hashes: array) -> Delta:
        """Records whose (file name, raw bytes) the index does not hold, and names it lists
        that this file does not. `hashes` is this file's `hashes()`."""
        known = set(index.hashes)
        changed: dict[str, dict[str, bytes]] = {key: {} for key in KEYS}
        position = 0
        for key, records in self.groups.items():
            for filename, raw in records.items():
                if hashes[position] not in known:
                    changed[key][filename] = bytes(raw)
                position += 1
        del known
        removed = [name for name in index.filenames() if not self.is_listed(name)]
        return Delta(changed=changed, removed=removed)

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
        names = "\n".join(name for records in self.groups.values() for name in records)
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
        start = 0
        blob = self.names_blob
        while start < len(blob):
            end = blob.find(b"\n", start)
            end = len(blob) if end < 0 else end
            yield blob[start:end].decode()
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
                return cls(hashes=hashes, names_blob=source.read(), fingerprint=fingerprint)
        except (OSError, ValueError, EOFError, KeyError):
            return None

    @staticmethod
    def discard(folder: Path) -> None:
        (folder / INDEX_NAME).unlink(missing_ok=True)
