"""GitHub REST API: post a comment on an issue (optional notices on a package's issue)."""

import re

import requests
from django.conf import settings

ISSUE_URL = re.compile(
    r"^https://github\.com/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<n>[0-9]+)$"
)


class GitHubError(Exception):
    """The comment could not be posted (bad URL, network, or an error status with its message)."""


def comments_endpoint(issue_url: str) -> str:
    """The API URL of an issue's comments, from the issue's web URL."""
    match = ISSUE_URL.match(issue_url.strip())
    if match is None:
        raise GitHubError(
            f"{issue_url!r} is not a GitHub issue URL (https://github.com/o/r/issues/N)"
        )
    api = settings.GITHUB_API_URL.rstrip("/")
    return f"{api}/repos/{match['owner']}/{match['repo']}/issues/{match['n']}/comments"


def post_issue_comment(*, issue_url: str, body: str, token: str) -> str:
    """Post `body` (Markdown) as a comment; returns the comment's web URL."""
    try:
        response = requests.post(
            comments_endpoint(issue_url),
            json={"body": body},
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=settings.HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
    except requests.HTTPError as exc:
        detail = _message(exc.response)
        raise GitHubError(f"{exc.response.status_code} from GitHub: {detail}") from exc
    except requests.RequestException as exc:
        raise GitHubError(f"GitHub unreachable: {exc}") from exc
    return str(response.json().get("html_url", ""))


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", "")) or response.reason
    except ValueError:
        return response.reason or "no message"
