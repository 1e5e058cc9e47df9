"""How a promotion's builds are published into the target: anaconda.org (anaconda-client) or a
local directory.

A backend says what it will copy from where to where (the confirmation page shows it) and
publishes a set of builds all or nothing, idempotently: a file already in the target with the
build's sha256 counts as copied. Failures become CopyFailed, retryable or not (naming the
build when one file is the cause); the promotion service decides on retries.

Local: every file is copied into a private mirror of the channel (sha256 verified), indexed
once, and the channel's repodata is switched with os.replace (adapters/local_channel.py).
anaconda.org copies one file per call and has no way to switch many files at once, so each file
is first copied under a staging label that users do not read, and only when every copy has
succeeded is each file moved (copy within the owner, then the staging label removed) to the
public label. Between the first and the last move a reader of the public label can see part of
the set (a few API calls long); a failure then is resumable, and moving again is idempotent.
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
from testing_app.adapters.local_channel import IncomingFile
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.local_channel import channel_root
from testing_app.adapters.local_channel import index_files
from testing_app.adapters.local_channel import publish_files
from testing_app.models import Promotion

LOCAL = Promotion.Backend.LOCAL
ANACONDA = Promotion.Backend.ANACONDA
# The anaconda.org label a set's files wait under until every one of them has been copied.
STAGING_LABEL = "promotion-staging"


class CopyFailed(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        build_id: int | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        # The server's Retry-After, when it sent one: the next attempt waits at least this.
        self.retry_after_s = retry_after_s
        self.build_id = build_id  # the build whose file failed; None: the set as a whole


@dataclass(frozen=True)
class CopyDone:
    already_present: bool
    detail: str


@dataclass(frozen=True)
class AlreadyPublic:
    """An anaconda.org file found already under the public label (with the build's sha256)."""

    done: CopyDone


class Backend(Protocol):
    name: str

    def describe(self, build: Build) -> tuple[str, str]: ...

    def publish(self, builds: list[Build]) -> list[CopyDone]: ...

    def candidate_channel(self, builds: list[Build], scratch: Path) -> str: ...


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

    def publish(self, builds: list[Build]) -> list[CopyDone]:
        """Every file, then one index, then one switch of the repodata (publish_files)."""
        try:
            placed = publish_files(root=self.root, files=self._incoming(builds))
        except LocalChannelError as exc:
            raise CopyFailed(str(exc), retryable=exc.retryable) from exc
        return [
            CopyDone(True, f"already in {p.path.parent} (same sha256)")
            if p.already_present
            else CopyDone(False, f"published in {p.path.parent} with the rest of the set")
            for p in placed
        ]

    def candidate_channel(self, builds: list[Build], scratch: Path) -> str:
        """The files about to be published, indexed on their own: what the check before
        copying solves from."""
        try:
            return index_files(root=scratch, files=self._incoming(builds))
        except LocalChannelError as exc:
            raise CopyFailed(str(exc), retryable=exc.retryable) from exc

    def _incoming(self, builds: list[Build]) -> list[IncomingFile]:
        files = []
        for build in builds:
            try:
                source = self._local_file(build)
            except CopyFailed as exc:
                raise CopyFailed(str(exc), retryable=exc.retryable, build_id=build.pk) from exc
            if not source.is_file():
                raise CopyFailed(
                    f"{build.filename}: source file {source} does not exist",
                    retryable=True,
                    build_id=build.pk,
                )
            files.append(IncomingFile(source, build.subdir, build.filename, build.sha256))
        return files

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

    def publish(self, builds: list[Build]) -> list[CopyDone]:
        """Copy every file under the staging label; only when all landed, move each one to
        the public label (see the module docstring for what a reader sees in between)."""
        staged = [self._stage(build) for build in builds]
        moved = []
        for build, first in zip(builds, staged, strict=True):
            if isinstance(first, AlreadyPublic):  # nothing to move
                moved.append(first.done)
                continue
            outcome = self._copy(build, self.target_owner, STAGING_LABEL, self.to_label)
            try:
                self.client.remove_label(spec=self._target_spec(build), label=STAGING_LABEL)
            except AnacondaError as exc:
                raise CopyFailed(
                    f"{build.filename} is public but still under {STAGING_LABEL}: {exc}",
                    retryable=exc.retryable,
                    build_id=build.pk,
                ) from exc
            present = first.already_present and outcome.already_present
            moved.append(CopyDone(present, outcome.detail))
        return moved

    def _stage(self, build: Build) -> "CopyDone | AlreadyPublic":
        """The file under the staging label, or AlreadyPublic (a set whose move was
        interrupted, resumed): a file of that name already in the target owner answers 409,
        and is then checked under the public label (same sha256: done)."""
        try:
            return self._copy(build, self.source_owner, self.from_label, STAGING_LABEL)
        except CopyFailed as exc:
            if not isinstance(exc.__cause__, AnacondaError) or exc.__cause__.status != 409:
                raise
        return AlreadyPublic(self._copy(build, self.source_owner, self.from_label, self.to_label))

    def candidate_channel(self, builds: list[Build], scratch: Path) -> str:
        """anaconda.org files are not read before copying: the check uses their records."""
        return ""

    def _target_spec(self, build: Build) -> FileSpec:
        return FileSpec(
            self.target_owner, build.name, build.version, f"{build.subdir}/{build.filename}"
        )

    def _copy(self, build: Build, owner: str, from_label: str, to_label: str) -> CopyDone:
        source = self.file_spec(build) if owner == self.source_owner else self._target_spec(build)
        try:
            outcome = self.client.copy_file(
                source=source,
                to_owner=self.target_owner,
                from_label=from_label,
                to_label=to_label,
                sha256=build.sha256,
            )
        except AnacondaError as exc:
            raise CopyFailed(
                f"{build.filename}: {exc.kind}: {exc}",
                retryable=exc.retryable,
                retry_after_s=exc.retry_after_s,
                build_id=build.pk,
            ) from exc
        return CopyDone(outcome.already_present, outcome.detail)
