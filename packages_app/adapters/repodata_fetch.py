"""Fetch one subdir's repodata.json only when it changed: conditional GET over http(s), file
size and modification time for file:// channels. No ORM here.

The validators of the last successful fetch go in (ETag / Last-Modified, or the file's stat);
the answer is `not_modified`, `missing` (the channel has no such subdir: 404, or no file), or
`fetched` with the file saved to a temporary path and the new validators.
"""

import os
import tempfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

import requests

CHUNK_BYTES = 1024 * 1024
NOT_MODIFIED, MISSING, FETCHED = "not_modified", "missing", "fetched"


class RepodataFetchError(Exception):
    """The channel could not be read: unreachable, timed out, refused, or too large."""


@dataclass(frozen=True)
class Fetched:
    status: str
    path: Path | None = None
    # What to send next time: {"etag", "last_modified"} (http) or {"mtime_ns", "size"} (file).
    validators: dict = field(default_factory=dict)
    # True when `path` is a downloaded copy the caller removes (file:// points at the original).
    temporary: bool = False


def repodata_url(base_url: str, subdir: str) -> str:
    return f"{base_url.rstrip('/')}/{subdir}/repodata.json"


def fetch_repodata(
    url: str,
    *,
    validators: dict,
    directory: Path,
    timeout_s: float,
    max_bytes: int,
    session: requests.Session | None = None,
) -> Fetched:
    """Fetch `url` into a new file under `directory` unless `validators` say it is unchanged."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _fetch_file(Path(unquote(parsed.path)), validators=validators)
    if parsed.scheme not in ("http", "https"):
        raise RepodataFetchError(f"{url}: unsupported URL scheme {parsed.scheme!r}")
    headers = {"Accept-Encoding": "gzip"}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    http = session or requests
    try:
        with http.get(url, headers=headers, stream=True, timeout=timeout_s) as response:
            if response.status_code == 304:
                return Fetched(NOT_MODIFIED, validators=validators)
            if response.status_code == 404:
                return Fetched(MISSING)
            response.raise_for_status()
            path = _save(response, directory=directory, max_bytes=max_bytes, url=url)
            fresh = {
                "etag": response.headers.get("ETag", ""),
                "last_modified": response.headers.get("Last-Modified", ""),
            }
    except requests.Timeout as exc:
        raise RepodataFetchError(f"{url}: timed out after {timeout_s:g} s") from exc
    except requests.RequestException as exc:
        raise RepodataFetchError(f"{url}: {exc}") from exc
    return Fetched(FETCHED, path=path, validators=fresh, temporary=True)


def _save(response, *, directory: Path, max_bytes: int, url: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, prefix="repodata-", suffix=".json")
    written = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in response.iter_content(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise RepodataFetchError(f"{url}: larger than {max_bytes} bytes, refused")
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _fetch_file(path: Path, *, validators: dict) -> Fetched:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return Fetched(MISSING)
    except OSError as exc:
        raise RepodataFetchError(f"{path}: {exc}") from exc
    fresh = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    if validators.get("mtime_ns") == fresh["mtime_ns"] and validators.get("size") == fresh["size"]:
        return Fetched(NOT_MODIFIED, validators=validators)
    return Fetched(FETCHED, path=path, validators=fresh)
