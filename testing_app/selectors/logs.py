"""Job logs: where a job's log lives, reading its tail or a chunk from an offset, the excerpt.

Logs are files under settings.LOG_DIR (shared storage when there are several machines): plain
text while the job runs, gzip-compressed once it finished; a job row keeps their path. Offsets
count bytes of the uncompressed text in both cases. Reads never follow a path outside LOG_DIR.
"""

import gzip
import re
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from testing_app.adapters.log_steps import MARKER_PREFIX
from testing_app.adapters.log_steps import LogStep
from testing_app.adapters.log_steps import lines_with_offsets
from testing_app.adapters.log_steps import read_marker
from testing_app.adapters.log_steps import steps_of
from testing_app.models import Job

TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
# The page shows the whole log on request (?log=full) up to this size, else its tail.
FULL_LOG_BYTES = 4 * 1024 * 1024
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
    """The last `max_bytes` of the job's log (from a line's start), or None when it has no
    readable log file."""
    path = resolve_log_path(job)
    if path is None:
        return None
    data, start, size = _read_range(path, start=None, length=max_bytes)
    if start > 0:  # begin with a whole line
        newline = data.find(b"\n")
        skipped = newline + 1 if newline >= 0 else len(data)
        data, start = data[skipped:], start + skipped
    return LogChunk(
        text=data.decode("utf-8", errors="replace"),
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


def read_log_steps(job: Job) -> list[LogStep]:
    """The steps of the job's whole log (adapters/log_steps.py), with their start times and
    durations. The last step of a finished job whose log has no end marker (a worker that died)
    ends when the job did; while the job runs, it has no end yet."""
    path = resolve_log_path(job)
    if path is None:
        return []
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    else:
        data = path.read_bytes()
    steps = steps_of(lines_with_offsets(data))
    last = steps[-1] if steps else None
    if last is not None and last.ended_at is None and job.finished_at is not None:
        steps[-1] = replace(last, ended_at=max(job.finished_at, last.started_at))
    return steps


@dataclass(frozen=True)
class LogSegment:
    """A piece of the shown log text: a step's marker line (with its step) or plain text."""

    text: str
    step: LogStep | None = None


def log_segments(chunk: LogChunk, steps: list[LogStep]) -> list[LogSegment]:
    """The shown text cut at its step marker lines, each paired with its step (the steps that
    begin inside the text, in order), so that the page can anchor and style them."""
    shown = iter([step for step in steps if step.offset >= chunk.offset])
    segments: list[LogSegment] = []
    plain: list[str] = []
    for line in chunk.text.splitlines(keepends=True):
        marker = read_marker(line) if line.startswith(MARKER_PREFIX) else None
        step = next(shown, None) if marker is not None and marker.kind == "step" else None
        if step is None:
            plain.append(line)
            continue
        if plain:
            segments.append(LogSegment(text="".join(plain)))
            plain = []
        segments.append(LogSegment(text=line, step=step))
    if plain:
        segments.append(LogSegment(text="".join(plain)))
    return segments


def chunk_markers(chunk: LogChunk) -> list[dict]:
    """The marker lines of a chunk, for the live view: each step's name and start, and the
    log's end, in order (JSON-ready)."""
    found = []
    for line in chunk.text.splitlines():
        marker = read_marker(line) if line.startswith(MARKER_PREFIX) else None
        if marker is not None:
            found.append({"kind": marker.kind, "name": marker.name, "at": marker.at.isoformat()})
    return found


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
