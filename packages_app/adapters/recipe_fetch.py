"""Fetch a proposed package's conda recipe over HTTP, refusing what a public fetcher must refuse.

The URL comes from an anonymous web form, so the fetch is hardened against server-side request
forgery and resource exhaustion: http/https only; every address the host name resolves to must
be public (unless private targets are explicitly allowed); redirects are followed by hand and
each target is checked the same way; the socket's actual peer address is checked again at
connect time (a DNS answer that changes between check and connect gains nothing); a timeout on
connect, on every read and on the whole body; and a cap on the body size. No ORM here.
"""

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import HTTPError
from urllib3.exceptions import ReadTimeoutError

RECIPE_FILENAMES = ("meta.yaml", "recipe.yaml")
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
USER_AGENT = "conda-distro-precheck/1 (+recipe pre-checks of proposed packages)"

# getaddrinfo-compatible: (host, port, type=...) -> [(family, type, proto, canonname, sockaddr)]
Resolver = Callable[..., list]


class RecipeFetchError(Exception):
    """The recipe could not be fetched; the message says why, for the proposer to read."""


class RecipeNotFoundError(RecipeFetchError):
    """The server answered 404: the next candidate URL may still have the recipe."""


class BlockedAddressError(RecipeFetchError):
    """The target is a private, loopback or otherwise non-public address."""


@dataclass(frozen=True)
class FetchedText:
    """A text document fetched from `url` (the final URL, after redirects)."""

    url: str
    text: str
    size: int


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch: timeouts (seconds), body cap (bytes), private targets allowed."""

    timeout_s: float
    max_bytes: int
    allow_private: bool = False


def recipe_candidate_urls(url: str) -> list[str]:
    """The raw-file URLs worth trying for a recipe URL, most likely first.

    A raw URL is used as is. A GitHub repository (a feedstock) becomes its default branch's
    recipe/meta.yaml then recipe/recipe.yaml; a GitHub "blob" page becomes its raw file; a
    "tree" page becomes meta.yaml then recipe.yaml in that folder.
    """
    parts = urlsplit(url.strip())
    if parts.hostname not in ("github.com", "www.github.com"):
        return [url.strip()]
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        return [url.strip()]
    owner, repo = segments[0], segments[1].removesuffix(".git")
    raw = f"https://raw.githubusercontent.com/{owner}/{repo}"
    if len(segments) == 2:
        return [f"{raw}/HEAD/recipe/{name}" for name in RECIPE_FILENAMES]
    if segments[2] == "blob" and len(segments) >= 5:
        return [f"{raw}/{'/'.join(segments[3:])}"]
    if segments[2] == "tree" and len(segments) >= 4:
        folder = "/".join(segments[3:])
        return [f"{raw}/{folder}/{name}" for name in RECIPE_FILENAMES]
    return [url.strip()]


# IPv6 forms that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052) and the
# deprecated IPv4-compatible ::a.b.c.d. They are judged by the IPv4 address they reach.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Refused whatever they embed: local-use NAT64 (RFC 8215), Teredo (its client address is
# obfuscated and reaches whatever the relay reaches), and ISATAP-style identifiers are covered
# by the mapped forms above or are not global.
_REFUSED_V6 = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("2001::/32"))


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses. An IPv6 address that embeds an IPv4 one
    (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is judged by that IPv4 address too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _REFUSED_V6):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded.is_global and not embedded.is_multicast
    return ip.is_global and not ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_target(url: str, *, allow_private: bool, resolve: Resolver) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to any non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RecipeFetchError(f"only http:// and https:// URLs can be fetched, not {url!r}")
    host = parts.hostname
    if not host:
        raise RecipeFetchError(f"{url!r} has no host name")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RecipeFetchError(f"{url!r} has an invalid port") from exc
    if allow_private:
        return
    try:
        answers = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RecipeFetchError(f"the host name {host!r} does not resolve: {exc}") from exc
    addresses = sorted({sockaddr[0] for *_, sockaddr in answers})
    if not addresses:
        raise RecipeFetchError(f"the host name {host!r} does not resolve to any address")
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked:
        raise BlockedAddressError(
            f"{host} resolves to {', '.join(blocked)}, a private, loopback or reserved address; "
            "recipes are only fetched from public hosts"
        )


class _Deadline:
    """A total deadline for one fetch, from connect to last byte: per-read timeouts let a server
    that drips its headers one byte at a time hold a worker for minutes. When it passes, the
    sockets the fetch opened are shut down, which ends any read blocked on them."""

    _current = threading.local()

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._outer = getattr(self._current, "deadline", None)
        self._current.deadline = self if self._outer is None else self._outer
        self._timer.start()
        return self._current.deadline

    def __exit__(self, *exc):
        self._timer.cancel()
        self._current.deadline = self._outer

    @classmethod
    def watch(cls, sock: socket.socket) -> None:
        deadline = getattr(cls._current, "deadline", None)
        if deadline is not None:
            with deadline._lock:
                deadline._sockets.append(sock)
                if deadline.expired:
                    _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RDWR)


class _DeadlineMixin:
    """Puts every socket the fetch opens under its total deadline."""

    def _new_conn(self):
        sock = super()._new_conn()
        _Deadline.watch(sock)
        return sock


class _PeerCheckMixin:
    """Checks the connected socket's peer address: what was actually reached, not a DNS answer."""

    def _new_conn(self):
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if not is_public_address(peer):
            sock.close()
            raise BlockedAddressError(
                f"{self.host} connected to {peer}, a private, loopback or reserved address; "
                "recipes are only fetched from public hosts"
            )
        return sock


class _PublicHTTPConnection(_DeadlineMixin, _PeerCheckMixin, HTTPConnection):
    pass


class _PublicHTTPSConnection(_DeadlineMixin, _PeerCheckMixin, HTTPSConnection):
    pass


class _DeadlineHTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _PublicHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class PublicOnlyAdapter(HTTPAdapter):
    """A requests transport whose connections may only reach public addresses."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PublicHTTPConnectionPool,
            "https": _PublicHTTPSConnectionPool,
        }


class DeadlineAdapter(HTTPAdapter):
    """A requests transport whose connections obey the fetch's total deadline (any address:
    for the operator's RECIPE_FETCH_ALLOW_PRIVATE setting)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlineHTTPConnectionPool,
            "https": _DeadlineHTTPSConnectionPool,
        }


def new_session(*, allow_private: bool) -> requests.Session:
    """A session without environment proxies (a proxy would hide where we connect)."""
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    adapter = DeadlineAdapter() if allow_private else PublicOnlyAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_text(
    url: str,
    *,
    policy: FetchPolicy,
    resolve: Resolver = socket.getaddrinfo,
    session: requests.Session | None = None,
) -> FetchedText:
    """GET one text document under `policy`, following at most MAX_REDIRECTS checked redirects.

    Raises RecipeNotFoundError on 404 and RecipeFetchError (with a readable reason) on anything
    else that is not a small UTF-8 text document.
    """
    with _session_scope(session, policy) as session, _Deadline(policy.timeout_s):
        return _follow(url, policy=policy, resolve=resolve, session=session)


@contextmanager
def _session_scope(session: requests.Session | None, policy: FetchPolicy):
    """The caller's session, or a new one closed afterwards (its pooled sockets with it)."""
    if session is not None:
        yield session
        return
    with new_session(allow_private=policy.allow_private) as own:
        yield own


def _follow(
    url: str, *, policy: FetchPolicy, resolve: Resolver, session: requests.Session
) -> FetchedText:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_target(current, allow_private=policy.allow_private, resolve=resolve)
        try:
            with session.get(
                current,
                stream=True,
                allow_redirects=False,
                timeout=(policy.timeout_s, policy.timeout_s),
            ) as response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    current = urljoin(current, location)
                    continue
                return _read_body(response, url=current, policy=policy)
        except BlockedAddressError:
            raise
        except requests.Timeout as exc:
            raise RecipeFetchError(
                f"{current} did not answer within {policy.timeout_s:g} s"
            ) from exc
        except requests.RequestException as exc:
            blocked = _blocked_cause(exc)
            if blocked is not None:
                raise blocked from exc
            _check_deadline(current, policy)
            raise RecipeFetchError(f"could not fetch {current}: {_short(exc)}") from exc
    raise RecipeFetchError(f"{url} redirects more than {MAX_REDIRECTS} times")


def _read_body(response: requests.Response, *, url: str, policy: FetchPolicy) -> FetchedText:
    if response.status_code == 404:
        raise RecipeNotFoundError(f"{url} answered 404 Not Found")
    if response.status_code >= 400:
        raise RecipeFetchError(f"{url} answered HTTP {response.status_code} {response.reason}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise RecipeFetchError(_too_big(url, policy.max_bytes))
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "text/html":
        raise RecipeFetchError(
            f"{url} is an HTML page, not a recipe: link the raw meta.yaml or recipe.yaml "
            "(or the feedstock repository itself)"
        )
    # The read timeout bounds each socket read; the deadline bounds a server that drips bytes.
    # read1() returns whatever one read brings (iter_content would wait for a full chunk).
    deadline = time.monotonic() + policy.timeout_s
    body = bytearray()
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            body.extend(chunk)
            if len(body) > policy.max_bytes:
                raise RecipeFetchError(_too_big(url, policy.max_bytes))
            if time.monotonic() > deadline:
                raise RecipeFetchError(f"{url} took longer than {policy.timeout_s:g} s to send")
    except ReadTimeoutError as exc:
        raise RecipeFetchError(f"{url} did not answer within {policy.timeout_s:g} s") from exc
    except (HTTPError, OSError) as exc:
        _check_deadline(url, policy)
        raise RecipeFetchError(f"could not read {url}: {_short(exc)}") from exc
    # A socket shut down by the deadline reads as the end of the body: not a whole recipe.
    _check_deadline(url, policy)
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeFetchError(f"{url} is not UTF-8 text ({exc.reason})") from exc
    if "\x00" in text:
        raise RecipeFetchError(f"{url} is a binary file, not a recipe")
    return FetchedText(url=url, text=text, size=len(body))


def _check_deadline(url: str, policy: FetchPolicy) -> None:
    deadline = getattr(_Deadline._current, "deadline", None)
    if deadline is not None and deadline.expired:
        raise RecipeFetchError(
            f"{url} took longer than {deadline.seconds:g} s in all (connect to last byte)"
        )


def fetch_recipe(
    url: str,
    *,
    policy: FetchPolicy,
    resolve: Resolver = socket.getaddrinfo,
    session: requests.Session | None = None,
) -> FetchedText:
    """Fetch the recipe behind a proposal's recipe URL (raw file, feedstock or GitHub page)."""
    candidates = recipe_candidate_urls(url)
    with _session_scope(session, policy) as session, _Deadline(policy.timeout_s):
        for candidate in candidates:
            try:
                return fetch_text(candidate, policy=policy, resolve=resolve, session=session)
            except RecipeNotFoundError:
                continue
    tried = ", ".join(candidates)
    raise RecipeFetchError(f"no recipe found (404) at {tried}")


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    # urllib3 wraps errors raised while connecting; find ours in the chain.
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BlockedAddressError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__ or _first_arg_exception(current)
    return None


def _first_arg_exception(exc: BaseException) -> BaseException | None:
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, BaseException):
            return arg
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            return reason
    return None


def _too_big(url: str, max_bytes: int) -> str:
    return f"{url} is larger than {max_bytes // 1024} KiB; a recipe is a small text file"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."
