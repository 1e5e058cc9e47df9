"""anaconda.org as anaconda-client speaks it, at the HTTP boundary: the real binstar_client code
sends the requests; `responses` answers with the bodies anaconda-client's own code reads
(`copy` returns the list of copied files, each with its "basename"; errors carry {"error"}).
Then a promotion through it: 429/Retry-After, and the wait for anaconda.org's index before the
target is re-synced."""

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.utils import format_datetime
from urllib.parse import quote_plus

import pytest
import responses

from packages_app.models import Build
from testing_app.adapters.anaconda import AnacondaClient
from testing_app.adapters.anaconda import AnacondaError
from testing_app.adapters.anaconda import FileSpec
from testing_app.adapters.anaconda import resolve_token
from testing_app.adapters.anaconda import retry_after_seconds
from testing_app.adapters.solver import SolveResult
from testing_app.services.promotions import create_promotion
from testing_app.services.promotions import run_promotion
from tests import factories
from tests.testing_app.anaconda_world import FILENAME
from tests.testing_app.anaconda_world import stage_passing_kornia

pytest_plugins = ["tests.testing_app.promotion_fixtures"]

API = "https://api.anaconda.example"
CONDA = "https://conda.anaconda.example"
TOKEN = "SECRET-protocol-token-51"  # noqa: S105 - a test value
SHA = "34" * 32
SOURCE = FileSpec("stage-owner", "kornia", "0.7.3", "noarch/kornia-0.7.3-pyhd8ed1ab_0.conda")
SOURCE_COPY_URL = (
    f"{API}/copy/package/stage-owner/kornia/0.7.3/noarch/kornia-0.7.3-pyhd8ed1ab_0.conda"
)
PROMOTION_COPY_URL = f"{API}/copy/package/pytorch-staging/kornia/0.7.3/linux-64/{FILENAME}"
# A set is staged under a label users do not read, then moved to the public label (issue 19).
MOVE_URL = f"{API}/copy/package/pytorch/kornia/0.7.3/linux-64/{FILENAME}"
UNSTAGE_URL = f"{API}/channels/pytorch/promotion-staging"


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client():
    return AnacondaClient(token=TOKEN, api_url=API, timeout_s=5)


def _copy(client):
    return client.copy_file(
        source=SOURCE, to_owner="target-owner", from_label="staging", to_label="main", sha256=SHA
    )


@pytest.mark.parametrize(
    "answer",
    [[], [{"basename": "noarch/kornia-0.7.2-pyhd8ed1ab_0.conda"}], {"files": []}],
    ids=["nothing", "another_file", "not_a_list"],
)
def test_copy_answer_without_the_builds_file_is_not_a_copy(client, http, answer):
    http.add(responses.POST, SOURCE_COPY_URL, json=answer, status=200)
    with pytest.raises(AnacondaError) as excinfo:
        _copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable) == ("empty_copy", False)
    assert "was not copied" in str(excinfo.value)


def test_copy_answer_listing_the_file_among_others_is_a_copy(client, http):
    files = [{"basename": "noarch/other.conda"}, {"basename": SOURCE.basename, "size": 10}]
    http.add(responses.POST, SOURCE_COPY_URL, json=files, status=200)
    assert _copy(client).already_present is False


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "rate_limited"), (503, "server")], ids=["429", "503"]
)
def test_rate_limit_and_unavailable_are_retryable_with_the_servers_retry_after(
    client, http, status, kind
):
    http.add(
        responses.POST,
        SOURCE_COPY_URL,
        json={"error": "slow down"},
        status=status,
        headers={"Retry-After": "42"},
    )
    with pytest.raises(AnacondaError) as excinfo:
        _copy(client)
    error = excinfo.value
    assert (error.kind, error.retryable, error.status, error.retry_after_s) == (
        kind,
        True,
        status,
        42.0,
    )
    assert "slow down" in str(error)


def test_a_later_error_without_retry_after_does_not_reuse_an_old_one(client, http):
    http.add(responses.POST, SOURCE_COPY_URL, status=429, headers={"Retry-After": "9"})
    with pytest.raises(AnacondaError):
        _copy(client)
    http.replace(responses.POST, SOURCE_COPY_URL, json={"error": "busy"}, status=502)
    with pytest.raises(AnacondaError) as excinfo:
        _copy(client)
    assert excinfo.value.retry_after_s is None


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == pytest.approx(90)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_token_comes_from_the_setting_then_binstar_variable_then_anaconda_login(
    tmp_path, monkeypatch
):
    import binstar_client.utils.config as client_config

    monkeypatch.setattr(client_config, "TOKEN_DIRS", [str(tmp_path)])
    assert resolve_token("", api_url=API, environ={}) == ("", "")
    # `anaconda login` saves the token as <quote_plus(API URL)>.token in its token folder.
    (tmp_path / f"{quote_plus(API)}.token").write_text("saved-token\n")
    assert resolve_token("", api_url=API, environ={}) == ("saved-token", "anaconda login")
    binstar = {"BINSTAR_API_TOKEN": "binstar-token"}
    assert resolve_token("", api_url=API, environ=binstar) == (
        "binstar-token",
        "BINSTAR_API_TOKEN",
    )
    assert resolve_token("configured", api_url=API, environ=binstar) == (
        "configured",
        "ANACONDA_API_TOKEN",
    )


# --- a promotion through anaconda.org --------------------------------------------------------


def solves(**kwargs):
    return SolveResult(True, (), "", 0.01)


@pytest.fixture
def staged(promo_settings):
    promo_settings.ANACONDA_API_URL = API
    promo_settings.ANACONDA_API_TOKEN = TOKEN
    promo_settings.PROMOTION_INDEX_POLL_S = 5
    promo_settings.PROMOTION_INDEX_WAIT_S = 12
    return stage_passing_kornia(conda_url=CONDA, sha256=SHA)


def _moves(http):
    http.add(responses.POST, MOVE_URL, json=[{"basename": f"linux-64/{FILENAME}"}], status=200)
    http.add(responses.DELETE, UNSTAGE_URL, json={}, status=201)


def _repodata(http, filenames: list[str]):
    records = {
        name: {
            "name": name.split("-")[0],
            "version": name.split("-")[1],
            "build": name.split("-")[2].removesuffix(".conda"),
            "build_number": 0,
            "depends": [],
            "subdir": "linux-64",
            "sha256": SHA,
            "size": 10,
        }
        for name in filenames
    }
    http.add(
        responses.GET,
        f"{CONDA}/pytorch/linux-64/repodata.json",
        body=json.dumps({"info": {"subdir": "linux-64"}, "packages.conda": records}),
    )


def _promote(build, user):
    promotion, _ = create_promotion(build_ids=[build.pk], requested_by=user, idempotency_key="p")
    return promotion


@pytest.mark.django_db
def test_promotion_waits_out_a_429_retry_after_then_copies(staged, release_manager, http):
    http.add(
        responses.POST,
        PROMOTION_COPY_URL,
        json={"error": "rate limited"},
        status=429,
        headers={"Retry-After": "45"},
    )
    http.add(responses.POST, PROMOTION_COPY_URL, json=[{"basename": f"linux-64/{FILENAME}"}])
    _moves(http)
    _repodata(http, [FILENAME])
    pauses = []
    result = run_promotion(
        promotion_id=_promote(staged, release_manager).pk, solver=solves, sleep=pauses.append
    )
    assert result.state == "done", result.error_message
    assert pauses == [45.0]  # the backoff is 0 s here: the server's Retry-After decided
    assert result.items.get().attempts == 2


@pytest.mark.django_db
def test_promotion_waits_for_anaconda_to_index_before_resyncing(staged, release_manager, http):
    http.add(responses.POST, PROMOTION_COPY_URL, json=[{"basename": f"linux-64/{FILENAME}"}])
    _moves(http)
    _repodata(http, [])  # not indexed yet
    _repodata(http, [FILENAME])
    http.add(
        responses.GET,
        f"{CONDA}/pytorch/noarch/repodata.json",
        body=json.dumps({"info": {"subdir": "noarch"}, "packages": {}}),
    )
    pauses = []
    result = run_promotion(
        promotion_id=_promote(staged, release_manager).pk, solver=solves, sleep=pauses.append
    )
    assert result.state == "done"
    steps = [(step["step"], step["ok"]) for step in result.followups]
    assert steps[:2] == [
        ("wait for the target's index", True),
        ("re-sync the target channel", True),
    ]
    assert "after 1 wait of 5 s" in result.followups[0]["detail"]
    assert pauses == [5]
    in_target = Build.objects.get(channel__name="pytorch", filename=FILENAME)
    assert in_target.state == Build.State.PROMOTED


@pytest.mark.django_db
def test_index_wait_times_out_clearly_and_withdraws_nothing(staged, release_manager, http):
    target = staged.channel.__class__.objects.get(name="pytorch")
    existing = factories.BuildFactory(
        channel=target, name="pytorch", filename="pytorch-2.5.1-cpu_0.conda", subdir="linux-64"
    )
    http.add(responses.POST, PROMOTION_COPY_URL, json=[{"basename": f"linux-64/{FILENAME}"}])
    _moves(http)
    _repodata(http, [])  # anaconda.org never lists it within the wait (and not pytorch either)
    pauses = []
    result = run_promotion(
        promotion_id=_promote(staged, release_manager).pk, solver=solves, sleep=pauses.append
    )
    assert result.state == "done"  # the copy landed; only the follow-ups wait
    followups = {step["step"]: step for step in result.followups}
    index = followups["wait for the target's index"]
    assert index["ok"] is False
    assert index["detail"].startswith("timed out: after 12 s")
    assert f"linux-64/{FILENAME}" in index["detail"]
    assert pauses == [5, 5, 5]  # bounded: ceil(12 / 5) waits, four reads
    for step in ("re-sync the target channel", "check install sets"):
        assert followups[step]["ok"] is False
        assert followups[step]["detail"].startswith("skipped:")
    existing.refresh_from_db()
    assert existing.state != Build.State.WITHDRAWN
