"""A small HTTP server that answers the few anaconda.org requests a promotion makes, over real
HTTP: the anaconda API's copy (binstar_client's POST /copy/package/...) and the channels'
repodata.json (the solver and the target re-sync read them). The first `failures` copy requests
get a 500, the next ones succeed: a copy to a label other than `main` (a set staged under
`promotion-staging`) is kept under that label, a copy to `main` puts the file into the target
channel's repodata, and DELETE /channels/<owner>/<label> takes the label off."""

import json
import threading
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


@dataclass
class AnacondaStub:
    """What the channels hold ({channel: {subdir: {filename: record}}}), what the staging
    channel offers for copying, and every request received."""

    failures: int = 1
    channels: dict = field(default_factory=dict)
    staged: dict = field(default_factory=dict)  # "<owner>/<subdir>/<filename>" -> record
    labels: dict = field(default_factory=dict)  # (owner, label) -> {"<subdir>/<filename>": record}
    requests: list = field(default_factory=list)  # (method, path, status)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def copies(self) -> list[tuple[str, str, int]]:
        return [r for r in self.requests if r[0] == "POST" and r[1].startswith("/copy/")]

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        with self.lock:
            status, payload = self._answer(method, path.split("?", 1)[0], body)
            self.requests.append((method, path, status))
            return status, payload

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts[:2] == ["copy", "package"] and len(parts) == 7:
            owner, _package, _version, subdir, filename = parts[2:]
            if len(self.copies()) < self.failures:
                return 500, {"error": "Internal server error (the stub's planned failure)"}
            request = json.loads(body or b"{}")
            from_label = request.get("from_channel") or "main"
            to_label = request.get("to_channel") or "main"
            if from_label == "main":
                record = self.staged.get(f"{owner}/{subdir}/{filename}")
            else:
                record = self.labels.get((owner, from_label), {}).get(f"{subdir}/{filename}")
            if record is None:
                return 404, {"error": "no such file"}
            to_owner = request.get("to_owner") or owner
            if to_label == "main":
                self.channels.setdefault(to_owner, {}).setdefault(subdir, {})[filename] = record
            else:
                self.labels.setdefault((to_owner, to_label), {})[f"{subdir}/{filename}"] = record
            return 200, [{"basename": f"{subdir}/{filename}"}]
        if method == "DELETE" and parts[0] == "channels" and len(parts) == 3:
            self.labels.pop((parts[1], parts[2]), None)
            return 201, {}
        if method == "GET" and len(parts) == 3 and parts[2] == "repodata.json":
            channel, subdir = parts[0], parts[1]
            if channel not in self.channels:
                return 404, {"error": "no such channel"}
            packages = self.channels[channel].get(subdir, {})
            return 200, {
                "info": {"subdir": subdir},
                "packages": {k: v for k, v in packages.items() if k.endswith(".tar.bz2")},
                "packages.conda": {k: v for k, v in packages.items() if k.endswith(".conda")},
            }
        return 404, {"error": f"the stub does not answer {method} {path}"}


def serve(stub: AnacondaStub) -> tuple[ThreadingHTTPServer, str]:
    """Serve `stub` on a free loopback port in a daemon thread; returns (server, base URL)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = stub.answer(method, self.path, self.rfile.read(length))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the http.server API
            self._reply("GET")

        def do_HEAD(self):  # noqa: N802
            self._reply("HEAD")

        def do_POST(self):  # noqa: N802
            self._reply("POST")

        def do_DELETE(self):  # noqa: N802
            self._reply("DELETE")

        def log_message(self, *args):  # the requests are recorded on the stub instead
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free one (tests/ports.py)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
