"""The anaconda.org adapter at the HTTP boundary: the real binstar_client code sends the requests,
`responses` answers them as anaconda.org would."""

import json
import logging

import pytest
import requests
import responses

from testing_app.adapters.anaconda import AnacondaClient
from testing_app.adapters.anaconda import AnacondaError
from testing_app.adapters.anaconda import FileSpec

API = "https://api.anaconda.example"
TOKEN = "SECRET-TOKEN-3f9a"  # noqa: S105 - a test value, checked to never leak
SHA = "ab" * 32
SOURCE = FileSpec("stage-owner", "kornia", "0.7.3", "noarch/kornia-0.7.3-pyhd8ed1ab_0.conda")
COPY_URL = f"{API}/copy/package/stage-owner/kornia/0.7.3/noarch/kornia-0.7.3-pyhd8ed1ab_0.conda"
DIST_URL = f"{API}/dist/target-owner/kornia/0.7.3/noarch/kornia-0.7.3-pyhd8ed1ab_0.conda"


@pytest.fixture
def client():
    return AnacondaClient(token=TOKEN, api_url=API, timeout_s=12)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def copy(client, *, to_owner="target-owner", from_label="staging", to_label="main"):
    return client.copy_file(
        source=SOURCE, to_owner=to_owner, from_label=from_label, to_label=to_label, sha256=SHA
    )


def test_copy_posts_to_the_configured_api_with_labels_and_token(client, http):
    http.add(responses.POST, COPY_URL, json=[{"basename": SOURCE.basename}], status=200)
    outcome = copy(client)
    assert outcome.already_present is False
    request = http.calls[0].request
    assert json.loads(request.body) == {
        "to_owner": "target-owner",
        "from_channel": "staging",
        "to_channel": "main",
    }
    assert request.headers["Authorization"] == f"token {TOKEN}"
    # binstar_client sets no timeout of its own; a hung server must not hang the worker.
    assert request.req_kwargs["timeout"] == 12


def test_copy_within_one_owner_still_names_the_target_owner(client, http):
    # binstar_client sends to_owner null when it is not given, and anaconda.org then copies
    # into the token's own account: the owner is always named.
    http.add(responses.POST, COPY_URL, json=[{"basename": SOURCE.basename}], status=200)
    copy(client, to_owner="stage-owner")
    assert json.loads(http.calls[0].request.body)["to_owner"] == "stage-owner"


def test_copy_401_is_unauthorized_and_not_retried(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "bad token"}, status=401)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable, excinfo.value.status) == (
        "unauthorized",
        False,
        401,
    )
    assert "write access" in str(excinfo.value)


def test_copy_404_is_not_found(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "no such file"}, status=404)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable) == ("not_found", False)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_copy_5xx_is_a_retryable_server_error(client, http, status):
    http.add(responses.POST, COPY_URL, json={"error": "busy"}, status=status)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable, excinfo.value.status) == (
        "server",
        True,
        status,
    )


def test_copy_connection_error_is_a_retryable_network_error(client, http):
    http.add(responses.POST, COPY_URL, body=requests.ConnectionError("connection reset"))
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable) == ("network", True)


def test_copy_403_is_a_client_error(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "forbidden"}, status=403)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable, excinfo.value.status) == (
        "client",
        False,
        403,
    )


def test_copy_409_with_the_same_sha256_in_the_target_is_done(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "exists"}, status=409)
    http.add(responses.GET, DIST_URL, json={"sha256": SHA, "labels": ["main", "staging"]})
    outcome = copy(client)
    assert outcome.already_present is True
    assert "same sha256" in outcome.detail


def test_copy_409_with_other_contents_is_a_conflict(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "exists"}, status=409)
    http.add(responses.GET, DIST_URL, json={"sha256": "cd" * 32, "labels": ["main"]})
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert (excinfo.value.kind, excinfo.value.retryable, excinfo.value.status) == (
        "conflict",
        False,
        409,
    )
    assert "never replaced" in str(excinfo.value)


def test_copy_409_same_file_missing_the_target_label_is_a_conflict(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "exists"}, status=409)
    http.add(responses.GET, DIST_URL, json={"sha256": SHA, "labels": ["staging"]})
    with pytest.raises(AnacondaError, match="not under label main"):
        copy(client)


def test_copy_409_lookup_failing_with_5xx_is_retryable(client, http):
    http.add(responses.POST, COPY_URL, json={"error": "exists"}, status=409)
    http.add(responses.GET, DIST_URL, json={"error": "down"}, status=503)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    assert excinfo.value.retryable is True


def test_token_never_appears_in_logs_errors_or_repr(client, http, caplog):
    caplog.set_level(logging.DEBUG)
    http.add(responses.POST, COPY_URL, json={"error": "bad token"}, status=401)
    with pytest.raises(AnacondaError) as excinfo:
        copy(client)
    http.replace(responses.POST, COPY_URL, json={"error": "busy"}, status=500)
    with pytest.raises(AnacondaError) as server_error:
        copy(client)
    assert caplog.records  # the copy was logged (owner, file, labels)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(excinfo.value)
    assert TOKEN not in str(server_error.value)
    assert TOKEN not in repr(client)


def test_client_without_token_refuses_with_a_clear_error():
    with pytest.raises(AnacondaError, match="ANACONDA_API_TOKEN and BINSTAR_API_TOKEN are empty"):
        AnacondaClient(token="", api_url=API)
