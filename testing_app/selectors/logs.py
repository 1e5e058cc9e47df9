"""Job logs: where a job's log lives, reading its tail or a chunk from an offset, the excerpt.

Logs are files under settings.LOG_DIR (shared storage when there are several machines): plain
text while the job runs, gzip-compressed once it finished; a job row keeps their path. Offsets
count bytes of the uncompressed text in both cases. Reads never follow a path outside LOG_DIR.
"""

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from testing_app.models import Job

TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
# Solver explanations (rattler's "Cannot solve the request", conda's exceptions) come first:
# an unsolvable test environment is "uninstallable", and conda-build then also prints
# "TESTS FAILED", which would point at the wrong lines.
SOLVER_MARKERS = re.compile(
    r"Cannot solve the request|UnsatisfiableError|NoPackagesFoundError|"
    r"LibMambaUnsatisfiableError|PackagesNotFoundError"
)
# conda-build's own note that the solve failed: the explanation, when present, follows later.
SOLVER_RETRY_MARKER = re.compile(r"failed to get package records")
TEST_FAILURE_MARKER = re.compile(r"TESTS FAILED:")
TRACEBACK_MARKER = re.compile(r"^Traceback \(most recent call last\)")
EXCERPT_LINES_BEFORE = 25
EXCERPT_LINES_AFTER = 30


def resolve_log_path(job: Job) -> Path | None:
    """The job's log file if it exists inside LOG_DIR, else None (never a path outside it)."""
    if not job.log_path:
        return None
    root = Path(settings.LOG_DIR).resolve()
    path = Path(job.log_path)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


@dataclass(frozen=True)
class LogChunk:
    text: str
    offset: int  # where `text` starts in the file
    next_offset: int  # where the next read should start
    size: int  # file size when read
    truncated: bool  # True when the text starts after the beginning of the file


def _read_range(path: Path, *, start: int | None, length: int) -> tuple[bytes, int, int]:
    """(data, start, size): `length` bytes from `start` (None: the last `length` bytes)."""
    if path.suffix == ".gz":
        # A finished log: gzip cannot seek from the end, so read it whole (finished logs are
        # bounded by the job's output) and slice.
        with gzip.open(path, "rb") as handle:
            content = handle.read()
        size = len(content)
        begin = max(0, size - length) if start is None else min(max(start, 0), size)
        return content[begin : begin + length], begin, size
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        begin = max(0, size - length) if start is None else min(max(start, 0), size)
        handle.seek(begin)
        return handle.read(length), begin, size


def read_log_tail(job: Job, *, max_bytes: int = TAIL_BYTES) -> LogChunk | None:
    """The last `max_bytes` of the job's log, or None when it has no readable log file."""
    path = resolve_log_path(job)
    if path is None:
        return None
    data, start, size = _read_range(path, start=None, length=max_bytes)
    return LogChunk(
        text=_decode(data, skip_partial_line=start > 0),
        offset=start,
        next_offset=size,
        size=size,
        truncated=start > 0,
    )


def read_log_chunk(job: Job, *, offset: int, max_bytes: int = CHUNK_BYTES) -> LogChunk | None:
    """Bytes from `offset` on (at most `max_bytes`, ending at a line end when possible)."""
    path = resolve_log_path(job)
    if path is None:
        return None
    data, offset, size = _read_range(path, start=offset, length=max_bytes)
    # Hand out whole lines only (unless one line is longer than a chunk), so the live view never
    # shows half a line and then the other half.
    if offset + len(data) < size or not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        if cut >= 0:
            data = data[: cut + 1]
    return LogChunk(
        text=data.decode("utf-8", errors="replace"),
        offset=offset,
        next_offset=offset + len(data),
        size=size,
        truncated=offset > 0,
    )


def _decode(data: bytes, *, skip_partial_line: bool) -> str:
    if skip_partial_line:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else data
    return data.decode("utf-8", errors="replace")


def extract_failure_excerpt(text: str) -> str:
    """The lines that explain a failure: the solver's explanation, else the lines before
    `TESTS FAILED`, else the last traceback; empty when the log shows none of them."""
    lines = text.splitlines()
    for marker in (SOLVER_MARKERS, SOLVER_RETRY_MARKER):
        for index, line in enumerate(lines):
            if marker.search(line):
                return "\n".join(lines[max(0, index - 2) : index + EXCERPT_LINES_AFTER])
    for index in range(len(lines) - 1, -1, -1):
        if TEST_FAILURE_MARKER.search(lines[index]):
            return "\n".join(lines[max(0, index - EXCERPT_LINES_BEFORE) : index + 3])
    for index in range(len(lines) - 1, -1, -1):
        if TRACEBACK_MARKER.search(lines[index]):
            return "\n".join(lines[index : index + EXCERPT_LINES_BEFORE])
    return ""


def get_failure_excerpt(job: Job, log: LogChunk | None) -> str:
    """What to show first on a job page: the stored excerpt, else one found in the log."""
    if job.failure_excerpt:
        return job.failure_excerpt
    if job.verdict not in ("failed", "uninstallable", "error", "timeout"):
        return ""
    found = extract_failure_excerpt(log.text) if log else ""
    return found or extract_failure_excerpt(job.log_tail) or job.error_message
