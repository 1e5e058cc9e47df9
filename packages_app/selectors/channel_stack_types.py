"""The distribution's one channel stack: which channels, in which order, read how.

Every path that solves or tests an environment reads this one definition: the planner (which
channels its evidence comes from), install-check jobs, the promotion gate's installability
checks, the install sets solved after a promotion, the rattler runner and the conda-build
command line (`-c` order, `CONDA_CHANNEL_PRIORITY`, `CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY`).

Order: staging, then the target, then the upstream channels, each role in registration order
(the order of DISTRO_CHANNELS). A path that must not see staged builds (the gate asks "would
users be able to install this once promoted?") takes the same stack without its staging
channels; a path that tests one build puts the build's own channel first. Nothing reorders.

Channel priority (CHANNEL_PRIORITY): strict, flexible or disabled, as conda's `channel_priority`
setting. conda's own default is `flexible`; pixi's default is `strict` (as is conda-forge's
recommendation). The default here is `strict`: strict priority only removes candidates
(a package name is taken from the highest channel that has it), so an environment that solves
under strict priority also solves under flexible priority, and a "passes" here holds for pixi
users and for conda users with conda's default alike. The reverse is not true, which is why
flexible is available for a distribution whose users are told to use it.

py-rattler's strict mode (what every solve here uses) is not conda's in one respect, verified on
the demo channels: it drops a lower channel's records of a name only when a higher channel has a
record matching the request, so behind a pytorch channel holding PyTorch up to 2.4.1 it still
takes conda-forge's 2.10.0 for `pytorch >=2.10`, which conda's strict mode would not (it ignores
conda-forge's pytorch outright). Where a higher channel does match (nvidia's cuda-cudart 12.1
behind conda-forge's 12.6) both exclude the lower one.

pip as a python dependency (PIP_AS_PYTHON_DEPENDENCY): conda adds `pip` to python's
dependencies (`add_pip_as_python_dependency`, default true); pixi and `rattler.solve` do not. The
default here is pixi's (false): the real lock files this distribution reproduces were solved
without it and lock no pip, and the channels made of their records carry none, so with conda's
rule no environment holding python would solve from them. Every solve passes the one setting
(rattler's `add_pip_as_python_dependency`, conda's CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY); set it
to true for conda parity where every channel of the stack carries pip.
"""

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

STRICT = "strict"
FLEXIBLE = "flexible"
DISABLED = "disabled"
PRIORITY_MODES = (STRICT, FLEXIBLE, DISABLED)
DEFAULT_PRIORITY = STRICT
STAGING, TARGET, UPSTREAM = "staging", "target", "upstream"
ROLE_ORDER = (STAGING, TARGET, UPSTREAM)


class StackError(ValueError):
    """A stack that cannot be read: an unknown priority mode, a channel listed twice."""


@dataclass(frozen=True)
class StackChannel:
    """One channel of the stack (plain values: no model instance)."""

    name: str
    url: str
    role: str = UPSTREAM
    id: int | None = None
    last_synced_at: datetime | None = None
    last_sync_error: str = ""


@dataclass(frozen=True)
class ChannelStack:
    """An ordered stack of channels, highest priority first, with one priority mode."""

    channels: tuple[StackChannel, ...]
    priority: str = DEFAULT_PRIORITY
    pip_as_python_dependency: bool = False

    def __post_init__(self):
        if self.priority not in PRIORITY_MODES:
            raise StackError(
                f"channel priority {self.priority!r} is not one of {', '.join(PRIORITY_MODES)}"
            )
        urls = [c.url.rstrip("/") for c in self.channels]
        if len(set(urls)) != len(urls):
            raise StackError("a channel is listed twice in the channel stack")

    @classmethod
    def of(cls, channels: Iterable[StackChannel], **options) -> "ChannelStack":
        """A stack of `channels` ordered by role (staging, target, upstream); channels of one
        role keep the order they are given in."""
        ordered = sorted(
            enumerate(channels),
            key=lambda pair: (_role_rank(pair[1].role), pair[0]),
        )
        return cls(tuple(c for _, c in ordered), **options)

    def without_staging(self) -> "ChannelStack":
        """The stack users see once builds are promoted: the same, minus staging channels."""
        return ChannelStack(
            tuple(c for c in self.channels if c.role != STAGING),
            self.priority,
            self.pip_as_python_dependency,
        )

    def urls(self, *, first: Sequence[str] = ()) -> list[str]:
        """Channel URLs in priority order, `first` (a build's own channel, a candidate channel)
        put on top where not already in the stack."""
        known = {c.url.rstrip("/") for c in self.channels}
        leading = [u for u in first if u and u.rstrip("/") not in known]
        return [*dict.fromkeys(leading), *(c.url for c in self.channels)]

    def from_channel(self, channel_name: str, spec: str) -> str:
        """`spec` taken from one channel of the stack only (pixi's `channel = "pytorch"`,
        conda's `pytorch::pytorch`), with that channel's URL, as the solver matches it."""
        for channel in self.channels:
            if channel.name == channel_name:
                return f"{channel.url.rstrip('/')}::{spec}"
        raise StackError(f"channel {channel_name!r} is not in the channel stack")

    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.channels if c.id is not None)

    def rattler_priority(self):
        """The mode as py-rattler's ChannelPriority."""
        from rattler import ChannelPriority

        return {
            STRICT: ChannelPriority.Strict,
            FLEXIBLE: ChannelPriority.Flexible,
            DISABLED: ChannelPriority.Disabled,
        }[self.priority]

    def conda_environment(self) -> dict[str, str]:
        """The same settings as conda (and the rattler runner) read them from the environment."""
        pip = "true" if self.pip_as_python_dependency else "false"
        return {"CONDA_CHANNEL_PRIORITY": self.priority, "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY": pip}

    def describe(self) -> str:
        names = " > ".join(c.name for c in self.channels) or "(no channel)"
        pip = "pip added to python" if self.pip_as_python_dependency else "pip not added"
        return f"{names}; {self.priority} channel priority; {pip}"


def _role_rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
