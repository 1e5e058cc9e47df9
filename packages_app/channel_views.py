"""The channel stack page: which channels every solve and test reads, in which order, how."""

from django.shortcuts import render

from packages_app.channel_stack import DEFAULT_PRIORITY
from packages_app.channel_stack_selectors import distribution_stack


def channel_stack(request):
    stack = distribution_stack()
    return render(
        request,
        "packages_app/channel_stack.html",
        {"stack": stack, "default_priority": DEFAULT_PRIORITY},
    )
