"""A promotion through the anaconda.org backend, at the HTTP boundary: the real binstar_client
code sends the copy requests and the re-sync reads the target's repodata, `responses` answers as
anaconda.org would. (The solver reads channels with its own HTTP client, so it is injected.)"""

import json

import pytest
import responses

from packages_app.models import Build
from testing_app.adapters.solver import SolveResult
from testing_app.services.promotions import create_promotion
from testing_app.services.promotions import run_promotion
from tests.testing_app.anaconda_world import FILENAME
from tests.testing_app.anaconda_world import stage_passing_kornia

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = pytest.mark.django_db

API = "https://api.anaconda.example"
CONDA = "https://conda.anaconda.example"
TOKEN = "SECRET-anaconda-token-77"  # noqa: S105 - a test value, checked to never leak
SHA = "12" * 32
COPY_URL = f"{API}/copy/package/pytorch-staging/kornia/0.7.3/linux-64/{FILENAME}"
# The move of the staged file to the public label: a copy within the target owner, then the
# staging label taken off.
MOVE_URL = f"{API}/copy/package/pytorch/kornia/0.7.3/linux-64/{FILENAME}"
UNSTAGE_URL = f"{API}/channels/pytorch/promotion-staging"


def solves(**kwargs):
    return SolveResult(True, (), "", 0.01)


@pytest.fixture
def staged(promo_settings):
    promo_settings.ANACONDA_API_URL = API
    promo_settings.ANACONDA_API_TOKEN = TOKEN
    return stage_passing_kornia(conda_url=CONDA, sha256=SHA)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _target_repodata(http):
    record = {
        "name": "kornia",
        "version": "0.7.3",
        "build": "py_0",
        "build_number": 0,
        "depends": ["pytorch >=2.5,<2.6"],
        "subdir": "linux-64",
        "sha256": SHA,
        "size": 10,
    }
    http.add(
        responses.GET,
        f"{CONDA}/pytorch/linux-64/repodata.json",
        body=json.dumps({"info": {"subdir": "linux-64"}, "packages.conda": {FILENAME: record}}),
    )
    http.add(
        responses.GET,
        f"{CONDA}/pytorch/noarch/repodata.json",
        body=json.dumps({"info": {"subdir": "noarch"}, "packages": {}}),
    )


def _moves(http):
    http.add(responses.POST, MOVE_URL, json=[{"basename": f"linux-64/{FILENAME}"}], status=200)
    http.add(responses.DELETE, UNSTAGE_URL, json={}, status=201)


def _promote(build, user):
    promotion, _ = create_promotion(build_ids=[build.pk], requested_by=user, idempotency_key="k")
    return promotion


def test_anaconda_promotion_retries_a_5xx_then_copies_and_resyncs(staged, release_manager, http):
    http.add(responses.POST, COPY_URL, json={"error": "unavailable"}, status=503)
    http.add(responses.POST, COPY_URL, json=[{"basename": f"linux-64/{FILENAME}"}], status=200)
    _moves(http)
    _target_repodata(http)
    promotion = _promote(staged, release_manager)
    item = promotion.items.get()
    assert item.source == (
        f"anaconda.org pytorch-staging/label/main: pytorch-staging/kornia/0.7.3/linux-64/{FILENAME}"
    )
    assert item.destination == "anaconda.org pytorch/label/main"

    result = run_promotion(promotion_id=promotion.pk, solver=solves, sleep=lambda s: None)

    assert result.state == "done", result.error_message
    item.refresh_from_db()
    assert (item.state, item.attempts) == ("done", 2)
    copies = [c for c in http.calls if c.request.method in ("POST", "DELETE")]
    assert [c.request.url for c in copies] == [COPY_URL, COPY_URL, MOVE_URL, UNSTAGE_URL]
    # Staged under a label users do not read, then moved to the public label.
    assert json.loads(copies[1].request.body) == {
        "to_owner": "pytorch",
        "from_channel": "main",
        "to_channel": "promotion-staging",
    }
    assert json.loads(copies[2].request.body) == {
        "to_owner": "pytorch",  # within the target owner, always named (anaconda-client)
        "from_channel": "promotion-staging",
        "to_channel": "main",
    }
    assert json.loads(copies[3].request.body)["basename"] == f"linux-64/{FILENAME}"
    assert result.followups[0]["ok"] is True
    in_target = Build.objects.get(channel__name="pytorch", filename=FILENAME)
    assert in_target.state == Build.State.PROMOTED
    stored = " ".join([result.error_message, item.error_message, json.dumps(result.followups)])
    assert TOKEN not in stored


def test_anaconda_promotion_401_fails_at_once_with_a_clear_reason(staged, release_manager, http):
    http.add(responses.POST, COPY_URL, json={"error": "token expired"}, status=401)
    result = run_promotion(
        promotion_id=_promote(staged, release_manager).pk, solver=solves, sleep=lambda s: None
    )
    assert result.state == "failed"
    assert result.error_message.startswith(f"{FILENAME}: unauthorized: unauthorized (401)")
    assert "nothing of the set was published" in result.error_message
    assert len(http.calls) == 1
    assert TOKEN not in result.error_message


def test_anaconda_promotion_409_with_the_same_file_counts_as_copied(staged, release_manager, http):
    http.add(responses.POST, COPY_URL, json={"error": "conflict"}, status=409)
    http.add(
        responses.GET,
        f"{API}/dist/pytorch/kornia/0.7.3/linux-64/{FILENAME}",
        json={"sha256": SHA, "labels": ["main"]},
    )
    _moves(http)
    _target_repodata(http)
    result = run_promotion(
        promotion_id=_promote(staged, release_manager).pk, solver=solves, sleep=lambda s: None
    )
    assert result.state == "done"
    assert "same sha256" in result.items.get().detail
