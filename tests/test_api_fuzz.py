"""Fuzzing the API from its own OpenAPI schema (issue 9): no input gives a 5xx.

Every request carries a real package token, so the one write endpoint (POST /api/test-this-
build/) is fuzzed past its authentication: bodies, fields and types, not only 401s.

schemathesis runs as a subprocess against a live server seeded with the demo catalog, with a
fixed seed and a bounded number of examples per operation so the run is repeatable and short.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from packages_app.models import Package
from packages_app.services.tokens import create_package_token

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = 25


def test_api_schema_fuzzing_finds_no_server_errors(live_server, tmp_path, settings):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR = 10_000  # fuzz the endpoint, not its throttle
    _, token = create_package_token(package=Package.objects.order_by("pk").first(), name="fuzz")
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live_server.url}/api/schema/",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "9",
            "--no-shrink",
            "--workers",
            "1",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output
    assert "POST /api/test-this-build/" in output
