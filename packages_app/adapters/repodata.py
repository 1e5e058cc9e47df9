"""Read a conda `repodata.json` (file path, file:// or http(s) URL) through py-rattler.

No ORM here: this turns bytes into validated, plain records or raises RepodataError with a
message that names the file and, where one is at fault, the record.
"""

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

import requests
from rattler import Channel
from rattler import MatchSpec
from rattler import RepoData
from rattler import Version

from packages_app.adapters.conda_names import UnsafeName
from packages_app.adapters.conda_names import check_filename
from packages_app.adapters.conda_names import check_subdir

SUBDIR_KEYS = ("packages", "packages.conda")


class RepodataError(Exception):
    """The repodata cannot be read or one of its records is invalid; nothing should be written."""


@dataclass(frozen=True)
class RepodataRecord:
    """The fields of one repodata record that the catalog keeps."""

    filename: str
    name: str
    version: str
    build_string: str
    build_number: int
    subdir: str
    depends: list[str]
    constrains: list[str]
    depends_names: list[str]
    track_features: str
    noarch: str
    license: str
    license_family: str
    md5: str
    sha256: str
    size: int | None
    timestamp: datetime | None
    # Specs py-rattler cannot read, kept as written (lenient parsing only: parse_repodata_file).
    unreadable_specs: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """Stable digest of every kept field: equal digests mean nothing to write."""
        payload = json.dumps(
            [
                self.name,
                self.version,
                self.build_string,
                self.build_number,
                self.subdir,
                self.depends,
                self.constrains,
                self.track_features,
                self.noarch,
                self.license,
                self.license_family,
                self.md5,
                self.sha256,
                self.size,
                self.timestamp.isoformat() if self.timestamp else None,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ParsedRepodata:
    source: str
    subdir: str
    records: list[RepodataRecord]


def read_repodata(
    source: str,
    *,
    timeout_s: float = 30.0,
    max_bytes: int = 512 * 1024 * 1024,
    lenient_specs: bool = False,
) -> ParsedRepodata:
    """Load and validate a repodata.json from a path or a file://, http:// or https:// URL."""
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "repodata.json"
            _download(source, path, timeout_s=timeout_s, max_bytes=max_bytes)
            return parse_repodata_file(path, source=source, lenient_specs=lenient_specs)
    if scheme == "file":
        path = Path(unquote(urlparse(source).path))
        return parse_repodata_file(path, source=source, lenient_specs=lenient_specs)
    if scheme and len(scheme) > 1:
        raise RepodataError(f"{source}: unsupported URL scheme {scheme!r} (use http, https, file)")
    return parse_repodata_file(Path(source), source=source, lenient_specs=lenient_specs)


def _download(url: str, path: Path, *, timeout_s: float, max_bytes: int) -> None:
    try:
        with requests.get(url, stream=True, timeout=timeout_s) as response:
            response.raise_for_status()
            written = 0
            with path.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise RepodataError(f"{url}: larger than {max_bytes} bytes, refused")
                    out.write(chunk)
    except requests.RequestException as exc:
        raise RepodataError(f"{url}: download failed: {exc}") from exc


def parse_repodata_file(
    path: Path, *, source: str | None = None, lenient_specs: bool = False
) -> ParsedRepodata:
    """Parse one repodata.json file; every record and every spec is validated by py-rattler.

    A spec py-rattler cannot read rejects the whole file, unless `lenient_specs` (channel sync):
    then the record is kept as it is, with the spec in `unreadable_specs` and out of
    `depends_names`, and the build's lint reports it (a lint error on the build, not a crash).
    """
    label = source or str(path)
    if not path.is_file():
        raise RepodataError(f"{label}: no such file")
    subdir = _checked_subdir(path, label)
    try:
        # resolve(): a relative path (as typed on the command line) has no file:// URI.
        rattler_records = RepoData.from_path(str(path)).into_repo_data(
            Channel(path.parent.resolve().as_uri())
        )
    except Exception as exc:  # rattler raises its own exception types without a common base
        raw = _load_json(path, label)  # error path only: read again to name the record
        raise RepodataError(_locate_bad_record(raw, label) or f"{label}: {exc}") from exc
    records = [_to_record(rec, label, lenient=lenient_specs) for rec in rattler_records]
    return ParsedRepodata(source=label, subdir=subdir, records=records)


def _checked_subdir(path: Path, label: str) -> str:
    """The file's subdir, after checking its JSON shape and every name that becomes a path.
    The Python copy of the JSON is dropped on return, before rattler parses the file: holding
    both at once doubled the peak memory (bench/repodata_memory.py)."""
    raw = _load_json(path, label)
    subdir = _subdir_of(raw, path, label)
    _check_names(raw, subdir, label)
    return subdir


def _load_json(path: Path, label: str) -> dict:
    try:
        raw = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise RepodataError(
            f"{label}: not valid JSON (truncated or malformed) at line {exc.lineno} "
            f"column {exc.colno}: {exc.msg}"
        ) from exc
    except UnicodeDecodeError as exc:  # e.g. a compressed repodata.json.zst saved under .json
        raise RepodataError(f"{label}: not valid JSON (not UTF-8 text): {exc}") from exc
    if not isinstance(raw, dict) or not any(key in raw for key in SUBDIR_KEYS):
        raise RepodataError(f"{label}: not a repodata.json (no 'packages' or 'packages.conda')")
    for key in SUBDIR_KEYS:
        if not isinstance(raw.get(key, {}), dict):
            raise RepodataError(f"{label}: '{key}' must map file names to records")
    return raw


def _subdir_of(raw: dict, path: Path, label: str) -> str:
    info = raw.get("info") or {}
    subdir = info.get("subdir") if isinstance(info, dict) else None
    if not subdir:
        subdirs = {rec.get("subdir") for _, rec in _raw_records(raw) if isinstance(rec, dict)}
        subdirs.discard(None)
        subdir = subdirs.pop() if len(subdirs) == 1 else path.parent.name
    if not subdir:
        raise RepodataError(f"{label}: cannot tell the subdir (no info.subdir)")
    return subdir


def _check_names(raw: dict, subdir: str, label: str) -> None:
    """Names that become paths (the subdir, each file name, each record's subdir) are safe,
    before anything else reads them; the first bad one is named."""
    try:
        check_subdir(subdir)
    except UnsafeName as exc:
        raise RepodataError(f"{label}: info: {exc}") from exc
    for filename, rec in _raw_records(raw):
        try:
            check_filename(filename)
            if isinstance(rec, dict) and "subdir" in rec:
                check_subdir(rec["subdir"])
        except UnsafeName as exc:
            raise RepodataError(f"{label}: record {filename!r}: {exc}") from exc


def _raw_records(raw: dict) -> Iterator[tuple[str, dict]]:
    for key in SUBDIR_KEYS:
        yield from (raw.get(key) or {}).items()


def _locate_bad_record(raw: dict, label: str) -> str | None:
    """Name the first record whose fields py-rattler rejects (its own error names no record)."""
    for filename, rec in _raw_records(raw):
        if not isinstance(rec, dict):
            return f"{label}: record {filename}: not an object"
        for field in ("name", "version", "build"):
            if not isinstance(rec.get(field), str) or not rec.get(field):
                return f"{label}: record {filename}: missing or invalid '{field}'"
        try:
            Version(rec["version"])
        except Exception as exc:  # noqa: BLE001 - any rattler error is reported with the record
            return f"{label}: record {filename}: invalid version {rec['version']!r}: {exc}"
        if not isinstance(rec.get("build_number", 0), int):
            return f"{label}: record {filename}: build_number must be an integer"
    return _locate_record_rattler_rejects(raw, label)


def _locate_record_rattler_rejects(raw: dict, label: str) -> str | None:
    # Error path only: py-rattler reports a byte offset, so parse record by record to name it.
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "repodata.json"
        for key in SUBDIR_KEYS:
            for filename, rec in (raw.get(key) or {}).items():
                single.write_text(json.dumps({key: {filename: rec}}))
                try:
                    RepoData.from_path(str(single))
                except Exception as exc:  # noqa: BLE001 - rattler errors share no base class
                    return f"{label}: record {filename}: {exc}"
    return None


def _to_record(rec, label: str, *, lenient: bool = False) -> RepodataRecord:
    depends_names = []
    unreadable = []
    for field in ("depends", "constrains"):
        for spec in getattr(rec, field):
            try:
                parsed = MatchSpec(spec)
            except Exception as exc:  # noqa: BLE001 - InvalidMatchSpecError and friends
                if lenient:
                    unreadable.append(spec)
                    continue
                raise RepodataError(
                    f"{label}: record {rec.file_name}: invalid {field} spec {spec!r}: {exc}"
                ) from exc
            if field == "depends" and parsed.name is not None:
                depends_names.append(parsed.name.normalized)
    noarch = rec.noarch
    return RepodataRecord(
        filename=rec.file_name,
        name=rec.name.normalized,
        version=str(rec.version),
        build_string=str(rec.build),
        build_number=rec.build_number,
        subdir=rec.subdir,
        depends=list(rec.depends),
        constrains=list(rec.constrains),
        depends_names=sorted(set(depends_names)),
        track_features=" ".join(rec.track_features),
        noarch="python" if noarch.python else ("generic" if noarch.generic else ""),
        license=rec.license or "",
        license_family=rec.license_family or "",
        md5=rec.md5.hex() if rec.md5 else "",
        sha256=rec.sha256.hex() if rec.sha256 else "",
        size=rec.size,
        timestamp=rec.timestamp,
        unreadable_specs=tuple(unreadable),
    )
