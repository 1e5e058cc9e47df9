"""Fetch a package file into a per-host cache keyed by its hash: streamed, verified, retried.

conda-build tests files only (no URLs), so every test job starts here. A file lands in the
cache only after its checksum matched, and by an atomic rename, so concurrent workers on one
host never see half a file, and a cached file is trusted without hashing it again.
"""

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

import requests

from packages_app.adapters.conda_names import UnsafeName
from packages_app.adapters.conda_names import check_filename

CHUNK_BYTES = 1024 * 1024
# HTTP statuses worth another try: the server or a proxy is busy, not the request wrong.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(Exception):
    """The file could not be fetched or did not match its checksum."""


class _TransientError(DownloadError):
    pass


@dataclass(frozen=True)
class Artifact:
    path: Path
    size: int
    from_cache: bool
    seconds: float
    attempts: int


_HEX_DIGEST = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")


def cache_path(*, cache_dir: Path, filename: str, sha256: str = "", md5: str = "") -> Path:
    """`<cache>/<sha256>/<filename>`: keyed by hash, and keeping the name conda-build reads."""
    if sha256:
        key = sha256.lower()
    elif md5:
        key = f"md5-{md5.lower()}"
    else:
        raise DownloadError(f"{filename}: no sha256 or md5 to verify the download against")
    # Both parts of the path come from repodata, which is untrusted input.
    if not _HEX_DIGEST.fullmatch((sha256 or md5).lower()):
        raise DownloadError(f"{filename}: the checksum {(sha256 or md5)!r} is not a hex digest")
    try:
        check_filename(filename)
    except UnsafeName as exc:
        raise DownloadError(f"refusing unsafe {exc}") from exc
    return Path(cache_dir) / key / filename


def fetch_artifact(
    *,
    url: str,
    filename: str,
    cache_dir: Path,
    sha256: str = "",
    md5: str = "",
    expected_size: int | None = None,
    timeout_s: float = 30.0,
    attempts: int = 3,
    backoff_s: float = 2.0,
    session: requests.Session | None = None,
    note: Callable[[str], None] = lambda _line: None,
) -> Artifact:
    """Return the cached file for (hash, filename), downloading it first if needed.

    `url` may be http(s):// or file://. Transient failures (connection errors, timeouts, 5xx,
    429) are retried up to `attempts` times with growing pauses; a checksum mismatch or a 4xx
    is not. `note` receives one line per step for the job log.
    """
    target = cache_path(cache_dir=cache_dir, filename=filename, sha256=sha256, md5=md5)
    started = time.monotonic()
    if target.is_file():
        note(f"package {filename}: cached at {target}")
        return Artifact(target, target.stat().st_size, True, time.monotonic() - started, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            note(f"downloading {url} (attempt {attempt}/{attempts})")
            size = _fetch_verified(
                url=url,
                target=target,
                sha256=sha256,
                md5=md5,
                expected_size=expected_size,
                timeout_s=timeout_s,
                session=session,
            )
        except _TransientError as exc:
            note(f"download failed: {exc}")
            if attempt == attempts:
                raise DownloadError(f"{url}: {exc} (after {attempts} attempts)") from exc
            time.sleep(backoff_s * attempt)
            continue
        note(f"downloaded {size} bytes, checksum verified")
        return Artifact(target, size, False, time.monotonic() - started, attempt)
    raise AssertionError("unreachable: the loop returns or raises")


def _fetch_verified(
    *,
    url: str,
    target: Path,
    sha256: str,
    md5: str,
    expected_size: int | None,
    timeout_s: float,
    session: requests.Session | None,
) -> int:
    digest = hashlib.sha256() if sha256 else hashlib.md5()  # noqa: S324 - integrity, not security
    expected = (sha256 or md5).lower()
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        dir=target.parent, prefix=".partial-", delete=False
    )
    try:
        with handle:
            size = 0
            for chunk in _stream(url, timeout_s=timeout_s, session=session):
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise DownloadError(f"{url}: larger than the {expected_size} bytes announced")
                digest.update(chunk)
                handle.write(chunk)
        if digest.hexdigest() != expected:
            raise DownloadError(
                f"{url}: checksum mismatch (expected {expected}, got {digest.hexdigest()})"
            )
        # Readable by the test sandbox's user: the file is a public package, checked.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
    return size


def _stream(url: str, *, timeout_s: float, session: requests.Session | None):
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            with path.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    yield chunk
        except FileNotFoundError as exc:
            raise DownloadError(f"{url}: no such file") from exc
        except OSError as exc:
            raise _TransientError(f"{url}: {exc}") from exc
        return
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL scheme {parsed.scheme!r}")
    http = session or requests
    try:
        with http.get(url, stream=True, timeout=timeout_s) as response:
            if response.status_code in TRANSIENT_STATUSES:
                raise _TransientError(f"HTTP {response.status_code}")
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                raise DownloadError(f"{url}: HTTP {response.status_code}") from exc
            yield from response.iter_content(CHUNK_BYTES)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _TransientError(str(exc)) from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _TransientError(f"connection broken mid-download: {exc}") from exc
