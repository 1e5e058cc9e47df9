"""What trusted publishing costs per "test this build" request, against a package token.

Both paths of testing_app.services.trusted_publishing.authenticate_ci_credential, N times each in
interleaved rounds on PostgreSQL: a package token (one SHA-256 and an indexed row, stamped as
used) and a GitHub Actions OIDC token (RS256 signature check with the cached key set, claim
checks, the publisher lookup, the jti insert). Tokens are signed before timing with a locally
generated RSA key whose public half is served as GitHub's key set by `responses` (the HTTP
boundary; GitHub itself is not contacted). Prints per-request times and the ratio.

    DATABASE_URL=postgres://... .venv/bin/python bench/ci_authentication.py [N]
"""

import json
import statistics
import sys
import time
import uuid

from _jobs_setup import configure_environment

configure_environment()

import jwt  # noqa: E402
import responses  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import transaction  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

from packages_app.models import Package  # noqa: E402
from packages_app.models import TrustedPublisher  # noqa: E402
from packages_app.models import UsedPublishingToken  # noqa: E402
from packages_app.services.tokens import create_package_token  # noqa: E402
from packages_app.services.trusted_publishers import register_trusted_publisher  # noqa: E402
from testing_app.adapters import github_oidc  # noqa: E402
from testing_app.services.trusted_publishing import authenticate_ci_credential  # noqa: E402

REPOSITORY = "bench-org/bench-package"
WORKFLOW_REF = f"{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
ROUNDS = 5


def _claims() -> dict:
    now = int(time.time())
    return {
        "jti": str(uuid.uuid4()),
        "aud": settings.TRUSTED_PUBLISHING_AUDIENCE,
        "iss": github_oidc.GITHUB_ACTIONS_ISSUER,
        "repository": REPOSITORY,
        "repository_id": "1",
        "job_workflow_ref": WORKFLOW_REF,
        "environment": "release",
        "run_id": "1",
        "nbf": now - 5,
        "iat": now - 5,
        "exp": now + 600,
    }


def _time_each(credentials: list[str]) -> list[float]:
    times = []
    for credential in credentials:
        start = time.perf_counter()
        with transaction.atomic():  # as ATOMIC_REQUESTS wraps the view
            authenticate_ci_credential(credential=credential)
        times.append(time.perf_counter() - start)
    return times


def main(n: int) -> None:
    settings.TRUSTED_PUBLISHING_ENABLED = True
    package, _ = Package.objects.get_or_create(name="bench-trusted-publishing")
    TrustedPublisher.objects.filter(package=package).delete()
    UsedPublishingToken.objects.all().delete()
    register_trusted_publisher(
        package=package, repository=REPOSITORY, workflow="release.yml", environment="release"
    )
    _, plain = create_package_token(package=package, name=f"bench-{uuid.uuid4().hex[:8]}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}
    github_oidc.forget_cached_keys()
    package_ms, oidc_ms = [], []
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, github_oidc.GITHUB_ACTIONS_JWKS_URL, json={"keys": [jwk]})
        warm = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"})
        _time_each([warm])  # fetches the key set once; not counted
        for _ in range(ROUNDS):
            tokens = [
                jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"})
                for _ in range(n)
            ]
            package_ms.append(statistics.median(_time_each([plain] * n)) * 1000)
            oidc_ms.append(statistics.median(_time_each(tokens)) * 1000)
        fetches = len(mock.calls)
    print(f"{n} requests per path, {ROUNDS} interleaved rounds; key set fetched {fetches} time(s)")
    for name, values in (("package token", package_ms), ("GitHub OIDC token", oidc_ms)):
        print(
            f"  {name:18} median per request {statistics.median(values):.3f} ms "
            f"(rounds {min(values):.3f}-{max(values):.3f} ms)"
        )
    ratios = [o / p for o, p in zip(oidc_ms, package_ms, strict=True)]
    print(
        f"  ratio OIDC / package token: median {statistics.median(ratios):.2f} "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
    )
    UsedPublishingToken.objects.all().delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
