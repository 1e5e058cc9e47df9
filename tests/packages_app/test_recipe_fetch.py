"""Fetching recipes at the HTTP boundary: candidates, limits, timeouts, private addresses.

`responses` stands in for the remote servers; a fake resolver stands in for DNS (the same
getaddrinfo signature), so address checks are tested without network. The timeout, slow-drip
and connect-time checks use real HTTP servers on 127.0.0.1.
"""

import http.server
import socket
import threading

import pytest
import requests
import responses

from packages_app.adapters.recipe_fetch import BlockedAddressError
from packages_app.adapters.recipe_fetch import FetchPolicy
from packages_app.adapters.recipe_fetch import RecipeFetchError
from packages_app.adapters.recipe_fetch import RecipeNotFoundError
from packages_app.adapters.recipe_fetch import fetch_recipe
from packages_app.adapters.recipe_fetch import fetch_text
from packages_app.adapters.recipe_fetch import is_public_address
from packages_app.adapters.recipe_fetch import recipe_candidate_urls

POLICY = FetchPolicy(timeout_s=2.0, max_bytes=1024 * 1024)
RECIPE = "package:\n  name: kornia\n  version: 0.7.3\n"
PUBLIC_IP = "93.184.216.34"


def resolver(table: dict[str, list[str]]):
    """A getaddrinfo stand-in answering from `table` (host -> addresses)."""

    def resolve(host, port, type=0, **kwargs):  # noqa: A002 - getaddrinfo's own name
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in table[host]
        ]

    return resolve


PUBLIC_DNS = resolver(
    {
        "example.org": [PUBLIC_IP],
        "raw.githubusercontent.com": ["185.199.108.133"],
        "internal.example.org": ["10.1.2.3"],
        "localhost": ["127.0.0.1"],
        "169.254.169.254": ["169.254.169.254"],
    }
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://github.com/conda-forge/kornia-feedstock",
            [
                "https://raw.githubusercontent.com/conda-forge/kornia-feedstock/HEAD/recipe/meta.yaml",
                "https://raw.githubusercontent.com/conda-forge/kornia-feedstock/HEAD/recipe/recipe.yaml",
            ],
        ),
        (
            "https://github.com/conda-forge/kornia-feedstock.git",
            [
                "https://raw.githubusercontent.com/conda-forge/kornia-feedstock/HEAD/recipe/meta.yaml",
                "https://raw.githubusercontent.com/conda-forge/kornia-feedstock/HEAD/recipe/recipe.yaml",
            ],
        ),
        (
            "https://github.com/o/r/blob/main/recipe/meta.yaml",
            ["https://raw.githubusercontent.com/o/r/main/recipe/meta.yaml"],
        ),
        (
            "https://github.com/o/r/tree/v1/conda",
            [
                "https://raw.githubusercontent.com/o/r/v1/conda/meta.yaml",
                "https://raw.githubusercontent.com/o/r/v1/conda/recipe.yaml",
            ],
        ),
        ("https://example.org/recipe/meta.yaml", ["https://example.org/recipe/meta.yaml"]),
    ],
)
def test_candidate_urls_turn_github_pages_into_raw_files(url, expected):
    assert recipe_candidate_urls(url) == expected


@responses.activate
def test_fetch_raw_recipe_returns_its_text():
    responses.get("https://example.org/meta.yaml", body=RECIPE, content_type="text/plain")
    fetched = fetch_text("https://example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)
    assert (fetched.text, fetched.size) == (RECIPE, len(RECIPE))


@responses.activate
def test_fetch_feedstock_falls_back_to_recipe_yaml_after_404():
    raw = "https://raw.githubusercontent.com/conda-forge/torchmetrics-feedstock/HEAD/recipe"
    responses.get(f"{raw}/meta.yaml", status=404)
    responses.get(f"{raw}/recipe.yaml", body="context: {}\n")
    fetched = fetch_recipe(
        "https://github.com/conda-forge/torchmetrics-feedstock", policy=POLICY, resolve=PUBLIC_DNS
    )
    assert fetched.url == f"{raw}/recipe.yaml"


@responses.activate
def test_fetch_feedstock_without_any_recipe_lists_what_was_tried():
    responses.get("https://raw.githubusercontent.com/o/r/HEAD/recipe/meta.yaml", status=404)
    responses.get("https://raw.githubusercontent.com/o/r/HEAD/recipe/recipe.yaml", status=404)
    with pytest.raises(RecipeFetchError, match="no recipe found.*meta.yaml.*recipe.yaml"):
        fetch_recipe("https://github.com/o/r", policy=POLICY, resolve=PUBLIC_DNS)


@responses.activate
@pytest.mark.parametrize(
    "error",
    [requests.exceptions.ConnectTimeout("connect"), requests.exceptions.ReadTimeout("read")],
)
def test_fetch_timeout_is_a_clear_error(error):
    responses.get("https://example.org/meta.yaml", body=error)
    with pytest.raises(RecipeFetchError, match="did not answer within 2 s"):
        fetch_text("https://example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)


@responses.activate
def test_fetch_refuses_declared_oversize_body():
    responses.get(
        "https://example.org/meta.yaml",
        body="x",
        headers={"Content-Length": str(5 * 1024 * 1024)},
        auto_calculate_content_length=False,
    )
    with pytest.raises(RecipeFetchError, match="larger than 1024 KiB"):
        fetch_text("https://example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)


@responses.activate
def test_fetch_stops_reading_an_undeclared_oversize_body():
    responses.get("https://example.org/meta.yaml", body=b"#" * (1024 * 1024 + 1))
    with pytest.raises(RecipeFetchError, match="larger than"):
        fetch_text(
            "https://example.org/meta.yaml",
            policy=FetchPolicy(timeout_s=2, max_bytes=1024 * 1024),
            resolve=PUBLIC_DNS,
        )


@responses.activate
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": 500}, "answered HTTP 500"),
        ({"status": 403}, "answered HTTP 403"),
        ({"body": "<html></html>", "content_type": "text/html"}, "HTML page, not a recipe"),
        ({"body": b"\xff\xfe\x00bad"}, "not UTF-8 text"),
        ({"body": b"abc\x00def"}, "binary file"),
    ],
)
def test_fetch_refuses_what_is_not_a_small_text_recipe(kwargs, message):
    responses.get("https://example.org/meta.yaml", **kwargs)
    with pytest.raises(RecipeFetchError, match=message):
        fetch_text("https://example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)


@responses.activate
def test_fetch_404_is_not_found():
    responses.get("https://example.org/meta.yaml", status=404)
    with pytest.raises(RecipeNotFoundError):
        fetch_text("https://example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.org/meta.yaml", "gopher://example.org/", "example.org"],
)
def test_fetch_refuses_schemes_other_than_http(url):
    with pytest.raises(RecipeFetchError, match="only http:// and https://"):
        fetch_text(url, policy=POLICY, resolve=PUBLIC_DNS)


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.0.0.7"],
        ["192.168.1.20"],
        ["172.16.5.4"],
        ["169.254.169.254"],  # cloud metadata service
        ["100.64.0.1"],  # carrier-grade NAT
        ["0.0.0.0"],
        ["::1"],
        ["fd00::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        [PUBLIC_IP, "10.0.0.7"],  # one bad answer among good ones is enough to refuse
    ],
)
def test_fetch_refuses_hosts_resolving_to_private_addresses(addresses):
    resolve = resolver({"sneaky.example.org": addresses})
    with pytest.raises(BlockedAddressError, match="only fetched from public hosts"):
        fetch_text("https://sneaky.example.org/meta.yaml", policy=POLICY, resolve=resolve)


def test_fetch_refuses_literal_private_ip_urls():
    with pytest.raises(BlockedAddressError):
        fetch_text("http://127.0.0.1:8810/meta.yaml", policy=POLICY)
    with pytest.raises(BlockedAddressError):
        fetch_text("http://[::1]:8810/meta.yaml", policy=POLICY)


def test_fetch_unresolvable_host_is_a_clear_error():
    with pytest.raises(RecipeFetchError, match="does not resolve"):
        fetch_text("https://nowhere.example.org/meta.yaml", policy=POLICY, resolve=PUBLIC_DNS)


@responses.activate
def test_fetch_follows_redirects_to_public_hosts():
    responses.get(
        "https://example.org/r", status=302, headers={"Location": "https://example.org/meta.yaml"}
    )
    responses.get("https://example.org/meta.yaml", body=RECIPE)
    fetched = fetch_text("https://example.org/r", policy=POLICY, resolve=PUBLIC_DNS)
    assert fetched.url == "https://example.org/meta.yaml"


@responses.activate
@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://internal.example.org/meta.yaml", "resolves to 10.1.2.3"),
        ("http://169.254.169.254/latest/meta-data/", "resolves to 169.254.169.254"),
        ("http://localhost/meta.yaml", "resolves to 127.0.0.1"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
def test_fetch_refuses_redirects_to_private_targets(location, message):
    responses.get("https://example.org/r", status=301, headers={"Location": location})
    with pytest.raises(RecipeFetchError, match=message):
        fetch_text("https://example.org/r", policy=POLICY, resolve=PUBLIC_DNS)
    # Nothing was requested from the redirect target.
    assert [c.request.url for c in responses.calls] == ["https://example.org/r"]


@responses.activate
def test_fetch_gives_up_on_redirect_loops():
    responses.get("https://example.org/a", status=302, headers={"Location": "/b"})
    responses.get("https://example.org/b", status=302, headers={"Location": "/a"})
    with pytest.raises(RecipeFetchError, match="redirects more than 5 times"):
        fetch_text("https://example.org/a", policy=POLICY, resolve=PUBLIC_DNS)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC_IP, True),
        ("2606:4700::1111", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        # IPv6 forms that embed a non-global IPv4 address reach it: refused.
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254 (cloud metadata)
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b:1::8.8.8.8", False),  # local-use NAT64
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        # The same forms around a public IPv4 address stay allowed.
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


# --- real servers on 127.0.0.1 (ports from this project's test range) ----------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.mode == "hang":
            self.release.wait(10)
            return
        if self.mode == "slow-headers":
            # Every header byte well within the read timeout, the headers never finished.
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(400):
                if self.release.wait(0.05):
                    return
                self.wfile.write(b"X")
                self.wfile.flush()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if self.mode == "drip":
            for _ in range(100):
                if self.release.wait(0.05):
                    return
                self.wfile.write(b"#")
                self.wfile.flush()
            return
        self.wfile.write(RECIPE.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    handler = type("Handler", (_Handler,), {"release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # tests/ports.py
    server.daemon_threads = True
    handler.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def test_fetch_from_loopback_works_when_private_targets_are_allowed(local_server):
    fetched = fetch_text(
        f"http://127.0.0.1:{local_server.port}/meta.yaml",
        policy=FetchPolicy(timeout_s=2, max_bytes=1024, allow_private=True),
    )
    assert fetched.text == RECIPE


def test_fetch_checks_the_connected_address_not_only_dns(local_server):
    # DNS (the fake resolver) says public, but the connection really lands on 127.0.0.1:
    # the connect-time check refuses it (DNS rebinding gains nothing).
    lying = resolver({"localhost": [PUBLIC_IP]})
    with pytest.raises(BlockedAddressError, match="connected to 127.0.0.1"):
        fetch_text(f"http://localhost:{local_server.port}/meta.yaml", policy=POLICY, resolve=lying)


def test_fetch_server_that_never_answers_times_out(local_server):
    local_server.mode = "hang"
    policy = FetchPolicy(timeout_s=0.3, max_bytes=1024, allow_private=True)
    # The read timeout and the total deadline are both 0.3 s: whichever fires first words it.
    with pytest.raises(
        RecipeFetchError, match=r"did not answer within 0.3 s|took longer than 0.3 s in all"
    ):
        fetch_text(f"http://127.0.0.1:{local_server.port}/meta.yaml", policy=policy)


def test_fetch_server_that_drips_bytes_hits_the_total_deadline(local_server):
    local_server.mode = "drip"
    policy = FetchPolicy(timeout_s=0.5, max_bytes=1024 * 1024, allow_private=True)
    # Each byte arrives well within the read timeout; only the whole-body deadline stops it.
    with pytest.raises(RecipeFetchError, match="took longer than 0.5 s"):
        fetch_text(f"http://127.0.0.1:{local_server.port}/meta.yaml", policy=policy)


def test_fetch_server_that_drips_its_headers_hits_the_total_deadline(local_server):
    """The deadline runs from connect to last byte: headers sent one byte at a time (each read
    well within its timeout) no longer hold the fetch (the server would drip for 20 s)."""
    local_server.mode = "slow-headers"
    policy = FetchPolicy(timeout_s=0.5, max_bytes=1024, allow_private=True)
    with pytest.raises(RecipeFetchError, match=r"took longer than 0.5 s in all"):
        fetch_recipe(f"http://127.0.0.1:{local_server.port}/meta.yaml", policy=policy)
