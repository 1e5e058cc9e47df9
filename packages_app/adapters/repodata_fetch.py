"""Fetch one subdir's repodata.json the way rattler does, into a persistent cache. No ORM here.

http(s) channels go through `rattler.fetch_repo_data`: it prefers `repodata.json.zst` (then
`.bz2`, then plain JSON) when the channel offers it, keeps the decompressed file and the
response's validators (ETag, Last-Modified, the file's BLAKE2 hash) in one cache folder per
channel and subdir, and revalidates with a conditional request (`If-None-Match` answered 304
reuses the cached file). JLAP is gone from py-rattler 0.28 and sharded repodata is only read
per package name by its Gateway, so a whole-channel sync reads the (compressed) full file.

file:// channels are read in place; their file size and modification time are the validators.

The answer is `missing` (the channel has no such subdir: 404, or no file) or `fetched` with the
path of the decompressed file and the validators; the caller compares the validators' `blake2`
with the last import's to know whether anything changed.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from rattler import Channel as RattlerChannel
from rattler import Subdir
from rattler.exceptions import FetchRepoDataError
from rattler.networking import Client
from rattler.networking import fetch_repo_data as rattler_fetch_repo_data

from testing_app.adapters.rattler_sync import run_rattler

NOT_MODIFIED, MISSING, FETCHED = "not_modified", "missing", "fetched"


class RepodataFetchError(Exception):
    """The channel could not be read: unreachable, timed out, refused, or too large."""


@dataclass(frozen=True)
class Fetched:
    status: str
    path: Path | None = None
    # {"blake2", "etag", "last_modified"} (http, from rattler's cache) or {"mtime_ns", "size"}.
    validators: dict = field(default_factory=dict)


def repodata_url(base_url: str, subdir: str) -> str:
    return f"{base_url.rstrip('/')}/{subdir}/repodata.json"


def cache_folder(cache_root: Path, base_url: str, subdir: str) -> Path:
    """The cache folder of one channel URL and subdir (rattler's files and the record index)."""
    key = hashlib.sha256(f"{base_url.rstrip('/')}|{subdir}".encode()).hexdigest()[:24]
    return cache_root / key


def fetch_repodata(
    base_url: str,
    subdir: str,
    *,
    validators: dict,
    cache_root: Path,
    timeout_s: float,
    max_bytes: int,
) -> Fetched:
    """The subdir's repodata.json, from the cache when the channel says it is unchanged."""
    url = repodata_url(base_url, subdir)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _fetch_file(Path(unquote(parsed.path)), validators=validators)
    if parsed.scheme not in ("http", "https"):
        raise RepodataFetchError(f"{url}: unsupported URL scheme {parsed.scheme!r}")
    folder = cache_folder(cache_root, base_url, subdir)
    folder.mkdir(parents=True, exist_ok=True)
    # No retry middleware: a dead channel is reported at once, the next sync tries again.
    timeout = max(1, math.ceil(timeout_s))  # rattler's client takes whole seconds
    client = Client(timeout=timeout)
    try:
        sparse = run_rattler(
            lambda: rattler_fetch_repo_data(
                channels=[RattlerChannel(base_url.rstrip("/") + "/")],
                platforms=[Subdir(subdir)],
                cache_path=folder,
                callback=None,
                client=client,
            )
        )
        for repodata in sparse:
            repodata.close()  # the caller reads the file itself, in bounded pieces
    except FetchRepoDataError as exc:
        reason = str(exc)
        if reason.startswith("repodata not found"):
            return Fetched(MISSING)
        if "timed out" in reason:
            raise RepodataFetchError(f"{url}: timed out after {timeout} s") from exc
        raise RepodataFetchError(f"{url}: {' / '.join(reason.splitlines())}") from exc
    except OSError:
        # rattler downloaded the file but cannot read it (not JSON, a bad record): the caller's
        # own reading names the fault; without a cached file it is reported as it is.
        if _cached(folder) is None:
            raise
    cached = _cached(folder)
    if cached is None:
        raise RepodataFetchError(f"{url}: rattler left no cached repodata")
    path, info = cached
    if path.stat().st_size > max_bytes:
        raise RepodataFetchError(f"{url}: larger than {max_bytes} bytes, refused")
    fresh = {
        "blake2": info.get("blake2_hash") or "",
        "etag": info.get("etag") or "",
        "last_modified": info.get("mod") or "",
    }
    return Fetched(FETCHED, path=path, validators=fresh)


def _cached(folder: Path) -> tuple[Path, dict] | None:
    """rattler's cache entry in `folder`: `<hash>.json` and its `<hash>.info.json` state."""
    for info_path in sorted(folder.glob("*.info.json")):
        path = info_path.with_name(info_path.name.removesuffix(".info.json") + ".json")
        if path.is_file():
            return path, json.loads(info_path.read_text())
    return None


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
