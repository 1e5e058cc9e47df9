"""Fault 6: anaconda.org answers the copy with a 500, then with a 200 (docs/fault-runs.md).

Real HTTP end to end: a trusted worker process (`rqworker promote`) runs the promote
job; binstar_client talks to a local stand-in of the anaconda.org API, py-rattler reads the
channels' repodata from it. The promotion completes exactly once: the failed copy, the one that
landed under the staging label and the move to the public label, one file in the target, one
notice per maintainer.
"""

import json
import subprocess
import sys

import pytest
import redis
from django.conf import settings

from packages_app.models import Build
from testing_app.models import Notification
from testing_app.models import Promotion
from testing_app.services.promotions import create_promotion
from tests.faults.anaconda_stub import AnacondaStub
from tests.faults.anaconda_stub import serve
from tests.faults.helpers import nothing_in_redis
from tests.faults.helpers import redis_holds
from tests.testing_app.anaconda_world import FILENAME
from tests.testing_app.anaconda_world import stage_passing_kornia

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

TOKEN = "fault-run-anaconda-token-31"  # noqa: S105 - a test value, checked never to be stored
SHA = "34" * 32


def _record(name: str, version: str, build: str, depends: list[str]) -> dict:
    return {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": depends,
        "subdir": "linux-64",
        "sha256": SHA,
        "size": 10,
    }


@pytest.fixture
def stub():
    stub = AnacondaStub(failures=1)
    pytorch = _record("pytorch", "2.5.1", "cpu_0", [])
    stub.channels = {"pytorch": {"linux-64": {"pytorch-2.5.1-cpu_0.conda": pytorch}, "noarch": {}}}
    kornia = _record("kornia", "0.7.3", "py_0", ["pytorch >=2.5,<2.6"])
    stub.channels["pytorch-staging"] = {"linux-64": {FILENAME: kornia}, "noarch": {}}
    stub.staged = {f"pytorch-staging/linux-64/{FILENAME}": kornia}
    server, url = serve(stub)
    stub.url = url
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture
def staged(stub, promo_settings):
    """A build in the staging channel that passes the gate (as tests/testing_app do it)."""
    promo_settings.ANACONDA_API_URL = stub.url
    promo_settings.ANACONDA_API_TOKEN = TOKEN
    return stage_passing_kornia(conda_url=stub.url, sha256=SHA, subdir="linux-64")


def test_anaconda_500_then_200_promotion_completes_exactly_once(
    stub, staged, release_manager, worker_env
):
    promotion, created = create_promotion(
        build_ids=[staged.pk], requested_by=release_manager, idempotency_key="fault-run"
    )
    assert created
    env = {
        "ANACONDA_API_URL": stub.url,
        "ANACONDA_API_TOKEN": TOKEN,
        "PROMOTION_BACKEND": "auto",
        "PROMOTION_RETRY_BACKOFF_S": "0.2,0.2",
        "INSTALL_SETS": json.dumps([["pytorch"]]),
        "INSTALL_CHECK_CHANNELS": "",
    }
    # The web side's trusted worker (hosts never serve `promote`), as a deployment runs it.
    run = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "rqworker", "promote", "--burst"],
        env={**worker_env, **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    promotion.refresh_from_db()
    assert promotion.state == Promotion.State.DONE, promotion.error_message
    item = promotion.items.get()
    assert (item.state, item.attempts, item.error_message) == ("done", 2, "")
    assert item.detail == "copied to pytorch/label/main"
    # The API saw one failed copy, the one that landed under the staging label, and the move to
    # the public label; the target holds the file once, and the staging label is gone.
    assert [status for _, _, status in stub.copies()] == [500, 200, 200]
    assert [path for _, path, _ in stub.copies()] == [
        f"/copy/package/pytorch-staging/kornia/0.7.3/linux-64/{FILENAME}",
        f"/copy/package/pytorch-staging/kornia/0.7.3/linux-64/{FILENAME}",
        f"/copy/package/pytorch/kornia/0.7.3/linux-64/{FILENAME}",
    ]
    assert stub.labels == {}
    assert list(stub.channels["pytorch"]["linux-64"]) == ["pytorch-2.5.1-cpu_0.conda", FILENAME]
    # One promotion: re-synced (the build is in the target, promoted), one notice, checks pass.
    assert [(step["step"], step["ok"]) for step in promotion.followups] == [
        ("wait for the target's index", True),
        ("re-sync the target channel", True),
        ("notify maintainers", True),
        ("check install sets", True),
    ]
    assert Build.objects.get(channel__name="pytorch", filename=FILENAME).state == "promoted"
    assert Build.objects.get(pk=staged.pk).state == "promoted"
    notices = Notification.objects.filter(kind=Notification.Kind.PROMOTION_DONE)
    assert notices.count() == 1
    assert Promotion.objects.count() == 1
    stored = " ".join(
        [promotion.error_message, item.error_message, json.dumps(promotion.followups)]
    )
    assert TOKEN not in stored
    held = redis_holds(redis.Redis.from_url(settings.REDIS_URL), "promote")
    assert held == nothing_in_redis()
