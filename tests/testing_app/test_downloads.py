"""Package downloads: a real HTTP server on 127.0.0.1, file:// channels, the hash-keyed cache."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

from testing_app.adapters.downloads import DownloadError
from testing_app.adapters.downloads import cache_path
from testing_app.adapters.downloads import fetch_artifact

PAYLOAD = b"conda package bytes " * 1000
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    # Scripted answers per path: a list of status codes, consumed one request at a time.
    script: dict[str, list[int]] = {}
    hits: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        statuses = self.script.get(self.path, [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        self.send_response(status)
        body = PAYLOAD if status == 200 else b"nope"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # a free port (tests/ports.py)
    _Handler.script, _Handler.hits = {}, {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_fetch_retries_transient_errors_then_verifies_and_caches(server, tmp_path):
    base, handler = server
    handler.script["/pkg.conda"] = [503, 502, 200]
    lines = []
    artifact = fetch_artifact(
        url=f"{base}/pkg.conda",
        filename="pkg-1.0-0.conda",
        cache_dir=tmp_path,
        sha256=SHA256,
        attempts=3,
        backoff_s=0,
        note=lines.append,
    )
    assert artifact.attempts == 3
    assert not artifact.from_cache
    assert artifact.path == cache_path(
        cache_dir=tmp_path, filename="pkg-1.0-0.conda", sha256=SHA256
    )
    assert artifact.path.read_bytes() == PAYLOAD
    assert any("HTTP 503" in line for line in lines)
    again = fetch_artifact(
        url=f"{base}/pkg.conda", filename="pkg-1.0-0.conda", cache_dir=tmp_path, sha256=SHA256
    )
    assert again.from_cache
    assert handler.hits["/pkg.conda"] == 3  # the cached file was not downloaded again


def test_fetch_gives_up_after_attempts(server, tmp_path):
    base, handler = server
    handler.script["/down.conda"] = [503]
    with pytest.raises(DownloadError, match="after 2 attempts"):
        fetch_artifact(
            url=f"{base}/down.conda",
            filename="down-1-0.conda",
            cache_dir=tmp_path,
            sha256=SHA256,
            attempts=2,
            backoff_s=0,
        )
    assert handler.hits["/down.conda"] == 2


def test_fetch_does_not_retry_not_found(server, tmp_path):
    base, handler = server
    handler.script["/gone.conda"] = [404]
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_artifact(
            url=f"{base}/gone.conda", filename="gone-1-0.conda", cache_dir=tmp_path, sha256=SHA256
        )
    assert handler.hits["/gone.conda"] == 1


def test_fetch_checksum_mismatch_leaves_nothing_in_cache(server, tmp_path):
    base, _ = server
    wrong = "0" * 64
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_artifact(
            url=f"{base}/x.conda", filename="x-1-0.conda", cache_dir=tmp_path, sha256=wrong
        )
    folder = tmp_path / wrong
    assert not any(folder.iterdir())


def test_fetch_file_url_with_md5_only(tmp_path):
    source = tmp_path / "channel" / "noarch" / "a-1-0.tar.bz2"
    source.parent.mkdir(parents=True)
    source.write_bytes(PAYLOAD)
    md5 = hashlib.md5(PAYLOAD).hexdigest()  # noqa: S324 - the repodata field
    artifact = fetch_artifact(
        url=source.as_uri(), filename=source.name, cache_dir=tmp_path / "cache", md5=md5
    )
    assert artifact.path.parent.name == f"md5-{md5}"
    assert artifact.size == len(PAYLOAD)


def test_fetch_without_checksum_or_with_unsafe_name_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="no sha256 or md5"):
        fetch_artifact(url="file:///x", filename="x.conda", cache_dir=tmp_path)
    with pytest.raises(DownloadError, match="unsafe file name"):
        fetch_artifact(url="file:///x", filename="../x.conda", cache_dir=tmp_path, sha256=SHA256)
