"""How one build is copied into the target: anaconda.org (anaconda-client) or a local directory.

A backend says what it will copy from where to where (the confirmation page shows it) and
copies one build, idempotently: a file already in the target with the build's sha256 counts as
copied. Failures become CopyFailed, retryable or not; the promotion service decides on retries.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError

from packages_app.models import Build
from packages_app.models import Channel
from testing_app.adapters.anaconda import AnacondaClient
from testing_app.adapters.anaconda import AnacondaError
from testing_app.adapters.anaconda import FileSpec
from testing_app.adapters.anaconda import resolve_token
from testing_app.adapters.downloads import DownloadError
from testing_app.adapters.downloads import fetch_artifact
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.local_channel import channel_root
from testing_app.adapters.local_channel import place_package
from testing_app.models import Promotion

LOCAL = Promotion.Backend.LOCAL
ANACONDA = Promotion.Backend.ANACONDA


class CopyFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        # The server's Retry-After, when it sent one: the next attempt waits at least this.
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class CopyDone:
    already_present: bool
    detail: str


class Backend(Protocol):
    name: str

    def describe(self, build: Build) -> tuple[str, str]: ...

    def copy(self, build: Build) -> CopyDone: ...


def backend_name(target: Channel) -> str:
    """PROMOTION_BACKEND, or by the target's URL when it is "auto"."""
    configured = settings.PROMOTION_BACKEND
    if configured in Promotion.Backend.values:
        return configured
    if configured != "auto":
        raise ValidationError(f"PROMOTION_BACKEND {configured!r} is not auto, local or anaconda.")
    return LOCAL if target.url.startswith("file:") else ANACONDA


def make_backend(
    *, name: str, source: Channel, target: Channel, client: AnacondaClient | None = None
) -> Backend:
    """The backend `name` between two channels; ValidationError when they cannot be paired."""
    if name == LOCAL:
        return LocalBackend(source=source, target=target)
    return AnacondaBackend(source=source, target=target, client=client)


class LocalBackend:
    """Copy into `<target dir>/<subdir>/` and re-index (adapters/local_channel.py). The source
    may be a local channel or any URL the download adapter reads (sha256 verified)."""

    name = LOCAL

    def __init__(self, *, source: Channel, target: Channel):
        if not target.url.startswith("file:"):
            raise ValidationError(f"The local backend needs a file:// target, not {target.url}.")
        self.source, self.target = source, target
        self.root = channel_root(target.base_url)

    def describe(self, build: Build) -> tuple[str, str]:
        return build.download_url, f"{self.target.base_url}/{build.subdir}/{build.filename}"

    def copy(self, build: Build) -> CopyDone:
        try:
            placed = place_package(
                source=self._local_file(build),
                root=self.root,
                subdir=build.subdir,
                filename=build.filename,
                sha256=build.sha256,
            )
        except LocalChannelError as exc:
            raise CopyFailed(str(exc), retryable=exc.retryable) from exc
        if placed.already_present:
            return CopyDone(True, f"already in {placed.path.parent} (same sha256), re-indexed")
        return CopyDone(False, f"copied to {placed.path.parent} and re-indexed")

    def _local_file(self, build: Build) -> Path:
        url = build.download_url
        if url.startswith("file:"):
            return channel_root(url)
        try:
            artifact = fetch_artifact(
                url=url,
                filename=build.filename,
                cache_dir=settings.ARTIFACT_DIR,
                sha256=build.sha256,
                md5=build.md5,
                expected_size=build.size,
                timeout_s=settings.HTTP_TIMEOUT_S,
                attempts=1,  # the promotion service retries with its own backoff
            )
        except DownloadError as exc:
            raise CopyFailed(f"download failed: {exc}", retryable=True) from exc
        return artifact.path


def anaconda_owner(channel: Channel) -> str:
    """The anaconda.org owner of a channel URL (https://conda.anaconda.org/<owner>)."""
    parsed = urlparse(channel.url)
    owner = parsed.path.strip("/").split("/")[0] if parsed.path.strip("/") else ""
    if parsed.scheme not in ("http", "https") or not owner:
        raise ValidationError(
            f"Channel {channel} ({channel.url}) is not an anaconda.org owner URL like "
            "https://conda.anaconda.org/<owner>."
        )
    return owner


def anaconda_client() -> AnacondaClient:
    """The anaconda.org client of this deployment; its token as anaconda-client finds one
    (adapters/anaconda.py::resolve_token). AnacondaError when there is none."""
    token, _ = resolve_token(settings.ANACONDA_API_TOKEN, api_url=settings.ANACONDA_API_URL)
    return AnacondaClient(
        token=token, api_url=settings.ANACONDA_API_URL, timeout_s=settings.HTTP_TIMEOUT_S
    )


class AnacondaBackend:
    """`Binstar.copy` from the source owner/label to the target owner/label (one file each)."""

    name = ANACONDA

    def __init__(self, *, source: Channel, target: Channel, client: AnacondaClient | None = None):
        self.source_owner, self.target_owner = anaconda_owner(source), anaconda_owner(target)
        self.from_label, self.to_label = source.label or "main", target.label or "main"
        self._client = client

    @property
    def client(self) -> AnacondaClient:
        if self._client is None:
            try:
                self._client = anaconda_client()
            except AnacondaError as exc:
                raise CopyFailed(str(exc), retryable=False) from exc
        return self._client

    def file_spec(self, build: Build) -> FileSpec:
        return FileSpec(
            self.source_owner, build.name, build.version, f"{build.subdir}/{build.filename}"
        )

    def describe(self, build: Build) -> tuple[str, str]:
        return (
            f"anaconda.org {self.source_owner}/label/{self.from_label}: {self.file_spec(build)}",
            f"anaconda.org {self.target_owner}/label/{self.to_label}",
        )

    def copy(self, build: Build) -> CopyDone:
        try:
            outcome = self.client.copy_file(
                source=self.file_spec(build),
                to_owner=self.target_owner,
                from_label=self.from_label,
                to_label=self.to_label,
                sha256=build.sha256,
            )
        except AnacondaError as exc:
            raise CopyFailed(
                f"{exc.kind}: {exc}", retryable=exc.retryable, retry_after_s=exc.retry_after_s
            ) from exc
        return CopyDone(outcome.already_present, outcome.detail)
