"""Reads the distribution's channel stack (selectors/channel_stack_types.py) from the Channel table
and the CHANNEL_PRIORITY / PIP_AS_PYTHON_DEPENDENCY settings."""

from django.conf import settings

from packages_app.models import Channel
from packages_app.selectors.channel_stack_types import ChannelStack
from packages_app.selectors.channel_stack_types import StackChannel


def stack_channel(channel: Channel) -> StackChannel:
    return StackChannel(
        name=str(channel),
        url=channel.base_url,
        role=channel.role,
        id=channel.pk,
        last_synced_at=channel.last_synced_at,
        last_sync_error=channel.last_sync_error,
    )


def distribution_stack() -> ChannelStack:
    """The one stack: staging, target, upstream; each role in registration order (one query)."""
    return ChannelStack.of(
        (stack_channel(c) for c in Channel.objects.order_by("pk")),
        priority=settings.CHANNEL_PRIORITY,
        pip_as_python_dependency=settings.PIP_AS_PYTHON_DEPENDENCY,
    )
