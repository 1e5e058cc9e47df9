"""The channel stack page: which channels every solve and test reads, in which order, how."""

from django.shortcuts import render

from packages_app.selectors.channel_stack import distribution_stack
from packages_app.selectors.channel_stack_types import DEFAULT_PRIORITY


def channel_stack(request):
    stack = distribution_stack()
    return render(
        request,
        "packages_app/channel_stack.html",
        {"stack": stack, "default_priority": DEFAULT_PRIORITY},
    )
