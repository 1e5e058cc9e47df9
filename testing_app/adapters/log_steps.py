"""The steps of a job's log (set up, solve, install, each test) and when each began.

A step starts with a marker line that the worker writes into the log itself, stamped with the
time (UTC, milliseconds) at which the worker saw it begin:

    ##[step 2026-12-06T15:57:05.123Z] solve the test environment
    ... the step's output ...
    ##[end 2026-12-06T15:57:09.870Z]

so the plain-text log (the download) carries its outline, and the job page reads it back into
a list of steps with their start times and durations. A runner (a separate process) asks for a
step by printing `##[step] <name>` on a line of its own; the worker replaces that line with the
stamped marker when it reads it. conda-build prints no such lines: `CondaBuildSteps` names its
steps from the lines it does print.

No Django here: the services write, the selectors read.
"""

import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

# What a runner prints to start a step; the worker turns it into a stamped marker.
STEP_ANNOUNCEMENT = "##[step] "
MARKER_PREFIX = "##["
_MARKER = re.compile(
    r"^##\[(?P<kind>step|end) (?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\](?: (?P<name>.*))?$"
)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A step's name is one line of at most this many characters (a test command may be long).
MAX_NAME_LENGTH = 160


def stamp(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at.strftime(_TIME_FORMAT)}.{at.microsecond // 1000:03d}Z"


def step_marker(name: str, at: datetime) -> str:
    return f"##[step {stamp(at)}] {clean_name(name)}"


def end_marker(at: datetime) -> str:
    return f"##[end {stamp(at)}]"


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= MAX_NAME_LENGTH else name[: MAX_NAME_LENGTH - 1] + "…"


def announced_step(line: str) -> str | None:
    """The step a runner's output line asks for (`##[step] <name>`), else None."""
    if line.startswith(STEP_ANNOUNCEMENT):
        return clean_name(line[len(STEP_ANNOUNCEMENT) :]) or "step"
    return None


@dataclass(frozen=True)
class Marker:
    kind: str  # "step" or "end"
    at: datetime
    name: str


def read_marker(line: str) -> Marker | None:
    """The marker a log line is, else None (a test's own output that merely looks like one,
    with a malformed time, is no marker)."""
    if not line.startswith(MARKER_PREFIX):
        return None
    match = _MARKER.match(line.rstrip("\r\n"))
    if match is None:
        return None
    at = datetime.strptime(match["at"][:-5], _TIME_FORMAT).replace(
        microsecond=int(match["at"][-4:-1]) * 1000, tzinfo=UTC
    )
    return Marker(kind=match["kind"], at=at, name=match["name"] or "")


@dataclass(frozen=True)
class LogStep:
    number: int  # 1, 2, ... in the order of the log
    name: str
    started_at: datetime
    offset: int  # byte offset of the step's marker line in the (uncompressed) log
    ended_at: datetime | None  # the next step's start or the log's end; None while it runs

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @property
    def anchor(self) -> str:
        """The id of the step's line on the job page: stable while the log grows."""
        return f"log-{self.offset}"


def steps_of(lines_with_offsets) -> list[LogStep]:
    """The steps of a log, from (byte offset, line) pairs in order; markers only are looked at."""
    found: list[tuple[Marker, int]] = []
    ended_at = None
    for offset, line in lines_with_offsets:
        marker = read_marker(line)
        if marker is None:
            continue
        if marker.kind == "end":
            ended_at = marker.at
        else:
            found.append((marker, offset))
    steps = []
    for index, (marker, offset) in enumerate(found):
        following = found[index + 1][0].at if index + 1 < len(found) else ended_at
        steps.append(
            LogStep(
                number=index + 1,
                name=marker.name,
                started_at=marker.at,
                offset=offset,
                ended_at=following,
            )
        )
    return steps


def lines_with_offsets(data: bytes, start: int = 0):
    """(byte offset, decoded line) for each line of `data`, which begins at `start`."""
    offset = start
    for raw in data.splitlines(keepends=True):
        yield offset, raw.decode("utf-8", errors="replace")
        offset += len(raw)


class CondaBuildSteps:
    """Names conda-build's steps from its own output, which announces none: its test begins
    with the solve (`TEST START:`), the install plan starts the install, and the first line
    after the plan begins the tests. (Tested through the conda-build stand-in of the test suite,
    which prints these lines as conda-build's code does; not against a real conda-build.)"""

    def __init__(self, plan_header: str):
        self.plan_header = plan_header
        self._state = "before"  # before, solving, plan, after plan, tests
        self._entries = 0  # lines of the install plan seen so far

    def step_before(self, line: str) -> str | None:
        """The step that begins with `line`, or None."""
        stripped = line.strip()
        if self._state == "before" and stripped.startswith("TEST START:"):
            self._state = "solving"
            return "solve the test environment"
        if self._state in ("before", "solving") and stripped == self.plan_header:
            self._state = "plan"
            return "install the test environment"
        if self._state == "plan":
            if stripped:
                self._entries += 1
            elif self._entries:
                self._state = "after plan"
            return None
        if self._state == "after plan" and stripped:
            self._state = "tests"
            return "run the tests"
        return None
