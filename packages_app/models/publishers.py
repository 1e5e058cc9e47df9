"""Trusted publishers: GitHub Actions workflows allowed to call POST /api/test-this-build/ for a
package with their OpenID Connect token instead of a stored package token (issue 21), and the
token ids already used (a token is accepted once)."""

from django.db import models
from django.db.models.functions import Lower


class TrustedPublisher(models.Model):
    """One GitHub workflow (optionally one deployment environment) trusted for one package.

    Matched against the claims of a GitHub Actions OIDC token as PyPI matches its trusted
    publishers: `repository` (owner/name), the workflow file in `job_workflow_ref`, and
    `environment` when one is registered. `repository_id` is GitHub's numeric id of the
    repository, recorded at the first accepted token: a repository deleted and re-created under
    the same name by someone else is then refused.
    """

    package = models.ForeignKey(
        "packages_app.Package", on_delete=models.CASCADE, related_name="trusted_publishers"
    )
    repository = models.CharField(max_length=140, help_text="owner/name on GitHub")
    workflow = models.CharField(max_length=255, help_text="file name under .github/workflows/")
    environment = models.CharField(max_length=255, blank=True)
    repository_id = models.CharField(max_length=32, blank=True)
    created_by = models.ForeignKey(
        "packages_app.Maintainer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "package",
                Lower("repository"),
                Lower("workflow"),
                Lower("environment"),
                name="trusted_publisher_unique_per_package",
            )
        ]
        indexes = [models.Index(Lower("repository"), name="trusted_publisher_repository")]

    def __str__(self) -> str:
        where = f" (environment {self.environment})" if self.environment else ""
        return f"{self.package.name}: {self.repository} {self.workflow}{where}"


class UsedPublishingToken(models.Model):
    """The `jti` of every accepted OIDC token, kept until the token expires: a replay is refused.

    In PostgreSQL (not Redis) because losing this table would re-open replays; rows past
    `expires_at` are deleted as new ones arrive.
    """

    jti = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.jti
