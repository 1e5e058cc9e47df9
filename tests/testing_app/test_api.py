"""The read-only JSON API: resources, filters, pagination, ETags, schema, bounded queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes():
    return make_axes()


@pytest.fixture
def catalog(axes):
    ada = factories.MaintainerFactory(name="Ada", github_handle="ada", email="ada@example.org")
    fill_package(make_package("kornia", axes, maintainer=ada), axes, verdict="failed")
    fill_package(make_package("fastai", axes), axes, verdict="passed")
    factories.HostFactory(name="gpu-a", last_heartbeat_at=timezone.now(), queues=["test.x.y"])
    return axes


def test_packages_list_and_detail_hide_maintainer_emails(catalog, client):
    data = client.get("/api/packages/").json()
    assert data["count"] == 2
    assert [p["name"] for p in data["results"]] == ["fastai", "kornia"]
    kornia = client.get("/api/packages/kornia/").json()
    assert kornia["maintainers"] == [{"name": "Ada", "github_handle": "ada"}]
    assert kornia["badge_url"] == "/badges/kornia.svg"
    assert "ada@example.org" not in client.get("/api/packages/?maintainer=ada").content.decode()
    assert client.get("/api/packages/?maintainer=ada@example.org").json()["count"] == 1


def test_api_root_lists_every_endpoint_including_matrix_and_schema(catalog, client):
    root = client.get("/api/", headers={"Accept": "application/json"}).json()
    assert set(root) >= {"packages", "builds", "runs", "jobs", "hosts", "matrix", "schema"}
    assert root["matrix"].endswith("/api/matrix/")
    assert client.get(root["schema"]).status_code == 200


def test_package_license_comes_from_its_builds_when_it_has_none_of_its_own(axes, client):
    package = make_package("torchvision", axes, version="0.20.1")
    build = make_build(package, axes, version="0.20.1", subdir="linux-64")
    build.license = "BSD-3-Clause"
    build.save()
    assert client.get("/api/packages/torchvision/").json()["license"] == "BSD-3-Clause"
    package.license = "BSD-3-Clause OR MIT"
    package.save()
    assert client.get("/api/packages/torchvision/").json()["license"] == "BSD-3-Clause OR MIT"


def test_api_rejects_unknown_filter_values_with_structured_400(catalog, client):
    response = client.get("/api/packages/?status=sleeping")
    assert response.status_code == 400
    assert "status" in response.json()
    response = client.get("/api/matrix/?platform=amiga")
    assert response.status_code == 400
    assert response.json()["platform"][0].startswith("Unknown platform")
    assert client.get("/api/jobs/?verdict=meh").status_code == 400
    assert client.get("/api/jobs/?run=abc").status_code == 400
    assert client.get("/api/matrix/?page_size=0").status_code == 400


def test_matrix_api_uses_the_page_filters_and_paginates(catalog, client):
    data = client.get("/api/matrix/?status=failing").json()
    assert data["count"] == 1
    assert data["columns"] == ["2.10.0", "2.5.1", "2.4.1"]
    row = data["results"][0]
    assert row["package"] == "kornia"
    assert row["maintainers"] == ["ada"]
    assert row["cells"]["2.5.1"] == {"worst": "failed", "counts": {"failed": 4}}
    page = client.get("/api/matrix/?page_size=1").json()
    assert page["count"] == 2
    assert page["next"].endswith("page=2&page_size=1") or "page=2" in page["next"]
    second = client.get(page["next"]).json()
    assert second["results"][0]["package"] == "kornia"
    assert second["previous"] is not None


def test_builds_runs_jobs_and_hosts_are_listed_with_filters(catalog, client):
    builds = client.get("/api/builds/?package=kornia&subdir=linux-64").json()
    assert builds["count"] == 1
    assert builds["results"][0]["channel"] == "staging"
    jobs = client.get("/api/jobs/?package=kornia&verdict=failed&variant=cpu").json()
    assert len(jobs["results"]) == 6  # 3 releases x 2 platforms
    assert "next" in jobs
    assert "count" not in jobs  # cursor pagination: no COUNT(*)
    job_id = jobs["results"][0]["id"]
    detail = client.get(f"/api/jobs/{job_id}/").json()
    assert detail["verdict"] == "failed"
    assert "failure_excerpt" in detail
    run_id = detail["run"]
    run = client.get(f"/api/runs/{run_id}/").json()
    assert run["progress"]["by_verdict"] == {"failed": 1}
    hosts = client.get("/api/hosts/").json()
    assert hosts["results"][0]["name"] == "gpu-a"
    assert hosts["results"][0]["state"] == "active"


def test_api_answers_if_none_match_with_304(catalog, client):
    first = client.get("/api/matrix/")
    etag = first["ETag"]
    assert etag.startswith('"')
    again = client.get("/api/matrix/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    # A new verdict changes the body, so the old ETag no longer matches.
    package = factories.PackageFactory(name="newpkg", latest_version="1.0")
    assert package.pk
    changed = client.get("/api/matrix/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    detail = client.get("/api/packages/kornia/")
    assert client.get("/api/packages/kornia/", HTTP_IF_NONE_MATCH=detail["ETag"]).status_code == 304


def test_api_is_read_only(catalog, client):
    user = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    assert client.post("/api/packages/", {"name": "x"}).status_code == 403
    assert client.delete("/api/packages/kornia/").status_code == 403


def test_openapi_schema_describes_every_resource(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/packages/",
        "/api/packages/{name}/",
        "/api/builds/",
        "/api/matrix/",
        "/api/runs/{id}/",
        "/api/jobs/",
        "/api/hosts/",
    ):
        assert path in schema["paths"], path
    params = {p["name"] for p in schema["paths"]["/api/matrix/"]["get"]["parameters"]}
    assert {"q", "maintainer", "status", "platform", "variant", "sort", "page"} <= params


@pytest.mark.parametrize(
    "url",
    [
        "/api/packages/",
        "/api/builds/",
        "/api/matrix/?sort=failing",
        "/api/runs/",
        "/api/jobs/",
        "/api/hosts/",
    ],
)
def test_api_query_count_does_not_grow_with_rows(catalog, client, url):
    def count():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small = count()
    for index in range(6):
        package = make_package(f"extra{index}", catalog, maintainer=factories.MaintainerFactory())
        build = make_build(package, catalog, version="1.0", subdir="linux-64")
        record_cell(
            build=build,
            release=catalog.releases[0],
            variant=catalog.variants[0],
            platform=catalog.platforms[0],
            verdicts=["error", "passed"],
            host=factories.HostFactory(),
        )
    assert count() == small
    assert small <= 10
