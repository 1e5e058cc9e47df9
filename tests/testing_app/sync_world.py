"""A channel served over real HTTP for the sync tests: ETag, 304 on If-None-Match, zst."""

import hashlib
import shutil
import threading
import time
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

from backports import zstd

from packages_app.models import Channel
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world


class ChannelHandler(SimpleHTTPRequestHandler):
    """Serves the channel folder with an ETag, answers If-None-Match with 304, serves
    `repodata.json.zst` compressed from `repodata.json` (unless the `zst` flag is off), and
    records every request; the `slow` flag sleeps past the client's timeout."""

    def do_HEAD(self):
        self._answer(send_body=False)

    def do_GET(self):
        self._answer(send_body=True)

    def _answer(self, *, send_body):
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get("If-None-Match", "")))
        if server.slow:
            time.sleep(server.slow)
        path = Path(self.translate_path(self.path))
        if path.name == "repodata.json.zst" and server.zst and path.with_suffix("").is_file():
            body = zstd.compress(path.with_suffix("").read_bytes())
        elif path.is_file() and path.suffix != ".zst":
            body = path.read_bytes()
        else:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def channel_server(root: Path):
    """A ThreadingHTTPServer on a free port of 127.0.0.1 serving `root` with ChannelHandler."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(ChannelHandler, directory=str(root)))
    httpd.requests, httpd.slow, httpd.root, httpd.zst = [], 0, root, True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def served_sample_world(tmp_path: Path, server):
    """The sample channel copied under the HTTP server, registered as the staging channel."""
    world = sample_world(tmp_path)
    shutil.copytree(world.sample.root, server.root / "samples")
    url = f"http://127.0.0.1:{server.server_address[1]}/samples"
    Channel.objects.filter(pk=world.channel.pk).update(url=url, subdirs=[SUBDIR, "noarch"])
    world.channel.refresh_from_db()
    return world
