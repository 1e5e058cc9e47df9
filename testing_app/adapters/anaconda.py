"""anaconda.org through anaconda-client: copy one file from a staging owner/label to the target,
and take one file off a label (a removed package leaving the target).

Wraps `binstar_client.Binstar` (built directly with the API URL: `get_server_api(site=...)`
takes a site *alias*, not a URL, and silently falls back to api.anaconda.org, see
reference/libraries.md section 2). No ORM here.

The token goes only into the client's Authorization header. It is never logged, never part of
an error message, and absent from this object's repr.

Errors become `AnacondaError` with a `kind` the promotion page can explain:
401 unauthorized, 404 not_found, 409 conflict (unless the file already in the target has the
same sha256: then the copy is done), 5xx server and connection trouble network (both
retryable), anything else client. Taking a file off a label treats 404 as done: the file, or its
label, is already gone.
"""

import logging
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

    def __init__(self, message: str, *, kind: str, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.status = status


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

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, **kwargs)


class AnacondaClient:
    """Copies files between owners/labels on an anaconda.org (or Anaconda Server) API."""

    def __init__(self, *, token: str, api_url: str, timeout_s: float = 30.0):
        if not token:
            raise AnacondaError(
                "No anaconda.org token configured (ANACONDA_API_TOKEN is empty).",
                kind="unauthorized",
                retryable=False,
            )
        self.api_url = api_url
        self._api = Binstar(token=token, domain=api_url)
        adapter = _TimeoutAdapter(timeout_s)
        self._api.session.mount("https://", adapter)
        self._api.session.mount("http://", adapter)

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
            self._api.copy(
                source.owner,
                source.package,
                source.version,
                basename=source.basename,
                to_owner=None if to_owner == source.owner else to_owner,
                from_label=from_label,
                to_label=to_label,
            )
        except Conflict:
            return self._resolve_conflict(
                source, to_owner=to_owner, to_label=to_label, sha256=sha256
            )
        except BinstarError as exc:
            raise _mapped(exc, what=f"copy of {source} from label {from_label}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._network_error(exc) from None
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
            raise _mapped(exc, what=f"removal of {spec} from label {label}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._network_error(exc) from None
        return LabelRemoval(False, f"{spec} removed from {spec.owner}/label/{label}")

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
            raise _mapped(exc, what=f"lookup of {target} after a conflict") from None
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
