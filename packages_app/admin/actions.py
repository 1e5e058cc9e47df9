"""The admin's "Promote" action on builds: it leads to the same confirmation step as the queue.

Kept out of testing_app.admin so that the catalog's admin can import it without importing (and
registering) the testing admin in the middle of its own import.
"""

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse

PROMOTE_PERMISSION = "testing_app.add_promotion"


@admin.action(description="Promote selected builds (as one set)…", permissions=["promote"])
def promote_builds(modeladmin, request, queryset):
    """Nothing is copied here: the release manager sees the plan and the gate, then confirms."""
    ids = sorted(queryset.values_list("pk", flat=True))
    query = "&".join(f"build={pk}" for pk in ids)
    return HttpResponseRedirect(f"{reverse('testing:promotion-confirm')}?{query}")


def has_promote_permission(request) -> bool:
    return request.user.has_perm(PROMOTE_PERMISSION)
