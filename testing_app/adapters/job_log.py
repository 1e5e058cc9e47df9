"""A job's log file: written line by line while the job runs, secrets redacted, kept whole
(gzip-compressed) once it is finished, with the last lines kept in memory for the live view.
Its steps (set up, solve, install, each test) are marker lines stamped with the time each
began (adapters/log_steps.py).

No Django here: the services decide where the file lives and what counts as a secret.
"""

import gzip
import os
import re
import shutil
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from pathlib import Path

from testing_app.adapters.log_steps import announced_step
from testing_app.adapters.log_steps import end_marker
from testing_app.adapters.log_steps import read_marker
from testing_app.adapters.log_steps import step_marker

REDACTED = "[redacted]"
# Environment variables whose values are secrets, by name.
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
# Variables that carry credentials inside URLs, or configure this service itself: a package's
# test script has no business seeing them.
SERVICE_VARIABLES = frozenset(
    {"DATABASE_URL", "REDIS_URL", "EMAIL_URL", "DISTRO_CHANNELS", "DJANGO_SETTINGS_MODULE"}
)
# Values shorter than this are not treated as secrets: redacting "1" or "true" would mangle logs.
MIN_SECRET_LENGTH = 6


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def secret_values(environ: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Values to redact: secret-named and service variables of `environ`, plus `extra`."""
    values = [
        value
        for name, value in environ.items()
        if is_secret_name(name) or name in SERVICE_VARIABLES
    ]
    values.extend(extra)
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({v for v in values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without secrets and service configuration: what a test process may see."""
    return {
        name: value
        for name, value in environ.items()
        if not is_secret_name(name) and name not in SERVICE_VARIABLES
    }


# Channel URLs carry anaconda.org tokens as a path segment: https://host/t/<token>/channel
_URL_TOKEN = re.compile(r"/t/[A-Za-z0-9_.-]{6,}/")


class Redactor:
    """Replaces every known secret value, and every token in a channel URL, in a text."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "/t/" in text:
            text = _URL_TOKEN.sub(f"/t/{REDACTED}/", text)
        return text


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobLog:
    """Append-only log of one job. Thread-safe: a reader thread writes, the main thread reads
    the tail. `step(name)` starts a step (a stamped marker line); a runner's `##[step] <name>`
    line does the same. `finish()` stamps the end, compresses the file and returns the path of
    the .gz."""

    def __init__(
        self,
        path: Path,
        *,
        redact: Redactor,
        tail_lines: int = 60,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.path = Path(path)
        self.redact = redact
        self.clock = clock
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._lock = threading.Lock()
        # The first error writing the file (disk full, I/O error). The job goes on with the tail
        # in memory, and the runner reports the job `error` with this cause; raising instead
        # would stop the thread that drains the test's output, and the test would hang.
        self.write_error: OSError | None = None
        self._file = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Line buffered: a live view reading the file sees whole lines promptly.
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            self.write_error = exc

    def write(self, line: str) -> str:
        """Write one line (redacted); returns what was written. A runner's step request
        (`##[step] <name>`) is written as the step's stamped marker instead."""
        clean = self.redact(line.rstrip("\n"))
        step = announced_step(clean)
        if step is not None:
            return self.step(step)
        if read_marker(clean) is not None:
            # Output that forges a stamped marker is kept, indented, as no marker: only the
            # worker decides when a step began.
            clean = " " + clean
        self._append(clean)
        return clean

    def step(self, name: str) -> str:
        """Start a step now: its marker line, stamped with the time; returns the line."""
        marker = step_marker(self.redact(name), self.clock())
        self._append(marker)
        return marker

    def _append(self, text: str, *, in_tail: bool = True) -> None:
        with self._lock:
            if in_tail:
                self._tail.append(text)
            if self.write_error is None:
                try:
                    self._file.write(text + "\n")
                except OSError as exc:
                    self.write_error = exc

    def tail(self) -> str:
        with self._lock:
            return "\n".join(self._tail)

    def close(self) -> None:
        with self._lock:
            if self._file is not None and not self._file.closed:
                try:
                    self._file.close()  # closes the file even when the last flush fails
                except OSError as exc:
                    self.write_error = self.write_error or exc

    def finish(self) -> Path:
        """Close and gzip the log; the plain file is replaced by `<name>.gz` atomically. When
        that cannot be written, the plain file stays (as far as it was written)."""
        if self._file is not None and not self._file.closed:
            # The file's last line only: the tail is what the output ended with.
            self._append(end_marker(self.clock()), in_tail=False)
        self.close()
        if self.write_error is not None:
            return self.path  # incomplete, on a disk that refuses writes: left as it is
        target = self.path.with_name(self.path.name + ".gz")
        partial = target.with_name(target.name + ".partial")
        try:
            with self.path.open("rb") as source, gzip.open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)
        except OSError as exc:
            self.write_error = self.write_error or exc
            partial.unlink(missing_ok=True)
            return self.path
        self.path.unlink()
        return target


def read_log_text(path: Path) -> str:
    """A log's text whether it is still plain (running) or already compressed (finished)."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8", errors="replace")
