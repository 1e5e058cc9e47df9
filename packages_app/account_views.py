"""Signed-in maintainers: their packages and proposals (linked by account or email)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from packages_app.proposal_selectors import get_maintainer_home


@login_required(login_url="accounts:login")
def account_home(request):
    home = get_maintainer_home(user=request.user)
    return render(
        request,
        "packages_app/account_home.html",
        {
            "home": home,
            "is_reviewer": request.user.has_perm("packages_app.review_proposal"),
        },
    )
