"""anaconda.org through anaconda-client: copy one file from a staging owner/label to the target,
and take one file off a label (a removed package leaving the target).

Wraps `binstar_client.Binstar` (built directly with the API URL: `get_server_api(site=...)`
takes a site *alias*, not a URL, and silently falls back to api.anaconda.org, see
reference/libraries.md section 2). No ORM here.

The token goes only into the client's Authorization header. It is never logged, never part of
an error message, and absent from this object's repr.

Errors become `AnacondaError` with a `kind` the promotion page can explain:
401 unauthorized, 404 not_found, 409 conflict (unless the file already in the target has the
same sha256: then the copy is done), 429 rate_limited, 5xx server and connection trouble
network (these three retryable; a Retry-After header the server sent is kept on the error),
a copy whose answer does not list the file empty_copy, anything else client. Taking a file off
a label treats 404 as done: the file, or its label, is already gone.

`copy` always names the target owner: binstar_client sends `to_owner: null` otherwise, and
anaconda.org then copies into the token's own account, which is not necessarily the source's.
"""

import email.utils
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from binstar_client import Binstar
from binstar_client.errors import BinstarError
from binstar_client.errors import Conflict
from binstar_client.errors import NotFound
from binstar_client.errors import ServerError
from binstar_client.errors import Unauthorized
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)


class AnacondaError(Exception):
    """A copy that did not happen, with what kind of failure it was."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.status = status
        # What the server's Retry-After asked for (429, 503), in seconds from now.
        self.retry_after_s = retry_after_s


def resolve_token(
    configured: str, *, api_url: str, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(token, where it came from): the configured ANACONDA_API_TOKEN, then BINSTAR_API_TOKEN,
    then the token `anaconda login` saved for this API URL (anaconda-client's own load_token,
    which also reads conda's token store when conda is installed). ("", "") when none.

    anaconda-client itself prefers BINSTAR_API_TOKEN over ANACONDA_API_TOKEN; here the
    project's own setting comes first, so a deployment's explicit token always wins."""
    environ = os.environ if environ is None else environ
    if configured:
        return configured, "ANACONDA_API_TOKEN"
    if environ.get("BINSTAR_API_TOKEN"):
        return environ["BINSTAR_API_TOKEN"], "BINSTAR_API_TOKEN"
    from binstar_client.utils import load_token  # noqa: PLC0415 - reads config files on import

    saved = load_token(api_url)
    return (saved, "anaconda login") if saved else ("", "")


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP-date) as seconds from now; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class CopyOutcome:
    already_present: bool
    detail: str


@dataclass(frozen=True)
class LabelRemoval:
    already_gone: bool
    detail: str


@dataclass(frozen=True)
class FileSpec:
    """One file on anaconda.org: `basename` is "<subdir>/<filename>"."""

    owner: str
    package: str
    version: str
    basename: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.package}/{self.version}/{self.basename}"


class _TimeoutAdapter(HTTPAdapter):
    """binstar_client sends requests without a timeout; a hung server must not hang a worker."""

    def __init__(self, timeout_s: float):
        super().__init__()
        self.timeout_s = timeout_s
        # binstar_client turns an error answer into an exception without its headers; the
        # adapter keeps the last Retry-After so that a 429/503 can say when to come back.
        self.last_retry_after: str | None = None

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        self.last_retry_after = None
        response = super().send(request, **kwargs)
        self.last_retry_after = response.headers.get("Retry-After")
        return response


class AnacondaClient:
    """Copies files between owners/labels on an anaconda.org (or Anaconda Server) API."""

    def __init__(self, *, token: str, api_url: str, timeout_s: float = 30.0):
        if not token:
            raise AnacondaError(
                "No anaconda.org token: ANACONDA_API_TOKEN and BINSTAR_API_TOKEN are empty and "
                "no token was saved by `anaconda login` for this API.",
                kind="unauthorized",
                retryable=False,
            )
        self.api_url = api_url
        self._api = Binstar(token=token, domain=api_url)
        self._adapter = _TimeoutAdapter(timeout_s)
        self._api.session.mount("https://", self._adapter)
        self._api.session.mount("http://", self._adapter)

    def __repr__(self) -> str:
        return f"AnacondaClient(api_url={self.api_url!r})"

    def copy_file(
        self, *, source: FileSpec, to_owner: str, from_label: str, to_label: str, sha256: str
    ) -> CopyOutcome:
        """Copy one file (label `from_label` of `source.owner`) to `to_owner`/`to_label`.

        A 409 means a file of that name is already in the target: it counts as done when its
        sha256 is the build's (a copy that landed before a crash or a double click), and as a
        conflict otherwise.
        """
        logger.info("copying %s (%s) to %s/%s", source, from_label, to_owner, to_label)
        try:
            copied = self._api.copy(
                source.owner,
                source.package,
                source.version,
                basename=source.basename,
                to_owner=to_owner,
                from_label=from_label,
                to_label=to_label,
            )
        except Conflict:
            return self._resolve_conflict(
                source, to_owner=to_owner, to_label=to_label, sha256=sha256
            )
        except BinstarError as exc:
            raise self._mapped(exc, what=f"copy of {source} from label {from_label}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._network_error(exc) from None
        except ValueError as exc:  # res.json() of an answer that is not JSON
            raise AnacondaError(
                f"the copy of {source} was answered with something other than JSON: {exc}",
                kind="client",
                retryable=False,
            ) from None
        _check_copied(copied, source=source, to_owner=to_owner, to_label=to_label)
        return CopyOutcome(False, f"copied to {to_owner}/label/{to_label}")

    def remove_label(self, *, spec: FileSpec, label: str) -> LabelRemoval:
        """Take one file (`spec`, owned by `spec.owner`) off `label`: DELETE
        /channels/{owner}/{label} naming the file. The file stays in the owner's account under
        its other labels; conda users of that label no longer see it."""
        logger.info("removing label %s from %s", label, spec)
        try:
            self._api.remove_channel(
                label,
                spec.owner,
                package=spec.package,
                version=spec.version,
                filename=spec.basename,
            )
        except NotFound:
            return LabelRemoval(True, f"{spec} was not under {spec.owner}/label/{label} (404)")
        except BinstarError as exc:
            raise self._mapped(exc, what=f"removal of {spec} from label {label}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._network_error(exc) from None
        return LabelRemoval(False, f"{spec} removed from {spec.owner}/label/{label}")

    def _mapped(self, exc: BinstarError, *, what: str) -> AnacondaError:
        error = _mapped(exc, what=what)
        error.retry_after_s = retry_after_seconds(self._adapter.last_retry_after)
        return error

    def _network_error(self, exc: Exception) -> AnacondaError:
        """A connection problem or timeout: retryable, named by type only (no URL with a token)."""
        return AnacondaError(
            f"network error talking to {self.api_url}: {type(exc).__name__}",
            kind="network",
            retryable=True,
        )

    def _resolve_conflict(
        self, source: FileSpec, *, to_owner: str, to_label: str, sha256: str
    ) -> CopyOutcome:
        target = FileSpec(to_owner, source.package, source.version, source.basename)
        try:
            existing = self._api.distribution(
                target.owner, target.package, target.version, target.basename
            )
        except BinstarError as exc:
            raise self._mapped(exc, what=f"lookup of {target} after a conflict") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._network_error(exc) from None
        existing_sha = str(existing.get("sha256") or existing.get("attrs", {}).get("sha256") or "")
        labels = existing.get("labels")
        if existing_sha and existing_sha.lower() == sha256.lower():
            if labels is not None and to_label not in labels:
                raise AnacondaError(
                    f"{target} is in {to_owner} with the same sha256 but not under label "
                    f"{to_label} (labels: {', '.join(labels) or 'none'})",
                    kind="conflict",
                    retryable=False,
                    status=409,
                )
            return CopyOutcome(True, f"already in {to_owner}/label/{to_label} (same sha256)")
        found = existing_sha or "no sha256 reported"
        raise AnacondaError(
            f"conflict (409): {target} already exists in {to_owner} with other contents "
            f"(sha256 {found}, expected {sha256}); a published file is never replaced",
            kind="conflict",
            retryable=False,
            status=409,
        )


def _check_copied(copied, *, source: FileSpec, to_owner: str, to_label: str) -> None:
    """anaconda.org answers a copy with the list of files it copied (anaconda-client prints
    each one's "basename"); an answer without the build's file copied nothing of it."""
    files = copied if isinstance(copied, list) else []
    basenames = [f.get("basename") for f in files if isinstance(f, dict)]
    if source.basename in basenames:
        return
    listed = ", ".join(str(b) for b in basenames) or "no file"
    raise AnacondaError(
        f"anaconda.org answered the copy of {source} to {to_owner}/label/{to_label} with "
        f"{listed}: the build's file was not copied",
        kind="empty_copy",
        retryable=False,
    )


def _mapped(exc: BinstarError, *, what: str) -> AnacondaError:
    status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    server_says = str(exc.args[0]) if exc.args else ""
    if isinstance(exc, Unauthorized):
        return AnacondaError(
            f"unauthorized (401) for the {what}: the token is missing, expired or has no "
            "write access to the target owner",
            kind="unauthorized",
            retryable=False,
            status=401,
        )
    if isinstance(exc, NotFound):
        return AnacondaError(
            f"not found (404): the {what} found no such package, version, file or label",
            kind="not_found",
            retryable=False,
            status=404,
        )
    if status == 429:
        return AnacondaError(
            f"rate limited (429) during the {what}: {server_says}",
            kind="rate_limited",
            retryable=True,
            status=429,
        )
    if isinstance(exc, ServerError):
        return AnacondaError(
            f"server error ({status or '5xx'}) during the {what}: {server_says}",
            kind="server",
            retryable=True,
            status=status,
        )
    return AnacondaError(
        f"refused ({status or 'error'}) during the {what}: {server_says}",
        kind="client",
        retryable=False,
        status=status,
    )
