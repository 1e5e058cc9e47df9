"""Catalog pages: content, filters, and a query count that does not grow with the catalog."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from packages_app.models import Package
from packages_app.models import TorchRelease
from tests.factories import BuildFactory
from tests.factories import ChannelFactory
from tests.factories import MaintainerFactory
from tests.factories import PackageFactory
from tests.factories import TorchReleaseFactory

pytestmark = pytest.mark.django_db


def _catalog(size: int) -> None:
    """`size` packages with two versions x two subdirs each, a maintainer, one torch dependency."""
    channel = ChannelFactory(name="staging")
    maintainer = MaintainerFactory()
    for version in ("2.4.1", "2.5.1"):
        TorchReleaseFactory(version=version)
    for index in range(size):
        package = PackageFactory(name=f"lib{index:04d}")
        package.maintainers.add(maintainer)
        for version in ("1.0", "1.1"):
            for subdir in ("linux-64", "osx-arm64"):
                BuildFactory(
                    channel=channel,
                    package=package,
                    name=package.name,
                    version=version,
                    subdir=subdir,
                    depends=["pytorch >=2.5,<2.6", "lib0000"],
                )


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/packages/",
        "/packages/?q=lib&status=active",
        "/packages/lib0001/",
        "/packages/lib0000/?rdeps=all",
    ],
)
def test_pages_query_count_does_not_grow_with_catalog(client, url):
    _catalog(3)
    small = _queries(client, url)
    _catalog_more = [
        BuildFactory(name=f"extra{i}", depends=["lib0000"], version=f"1.{i}") for i in range(40)
    ]
    for index in range(3, 40):
        package = PackageFactory(name=f"lib{index:04d}")
        BuildFactory(package=package, name=package.name, depends=["pytorch"])
    assert _catalog_more
    large = _queries(client, url)
    assert large == small
    assert small <= 15  # the design target for any page


def test_home_shows_catalog_counts(client):
    _catalog(2)
    response = client.get(reverse("home"))
    content = response.content.decode()
    assert "<strong>2</strong> packages" in content
    assert "<strong>8</strong> builds" in content


def test_package_list_filters_by_search_and_status(client):
    PackageFactory(name="kornia", summary="Differentiable computer vision")
    PackageFactory(name="fastai", status=Package.Status.AT_RISK)
    response = client.get("/packages/?q=vision")
    assert "kornia" in response.content.decode()
    assert "fastai" not in response.content.decode()
    response = client.get("/packages/?status=at_risk")
    assert "fastai" in response.content.decode()
    assert "kornia" not in response.content.decode()
    # An unknown status is ignored rather than failing.
    assert client.get("/packages/?status=bogus").status_code == 200


def test_package_list_paginates_and_keeps_filters_in_links(client, settings):
    settings.PAGE_SIZE = 5
    for index in range(12):
        PackageFactory(name=f"torchlib{index:02d}")
    response = client.get("/packages/?q=torchlib")
    content = response.content.decode()
    assert "Page 1 of 3" in content
    assert 'href="?q=torchlib&amp;page=2"' in content


def test_package_detail_shows_admitted_releases_and_reverse_dependencies(client):
    _catalog(2)
    TorchReleaseFactory(version="2.5.1", supported=True)
    response = client.get("/packages/lib0001/")
    content = response.content.decode()
    assert "pytorch &gt;=2.5,&lt;2.6" in content
    assert '<span class="chip">2.5.1</span>' in content
    assert '<span class="chip">2.4.1</span>' not in content
    response = client.get("/packages/lib0000/")
    assert 'href="/packages/lib0001/"' in response.content.decode()


def test_package_detail_of_unknown_name_is_404(client):
    assert client.get("/packages/does-not-exist/").status_code == 404


def test_package_detail_of_catalog_only_name_says_not_registered(client):
    BuildFactory(name="ffmpeg", version="4.3")
    content = client.get("/packages/ffmpeg/").content.decode()
    assert "not registered" in content
    assert "ffmpeg-4.3-py311_0.conda" in content


def test_package_detail_orders_versions_the_conda_way(client):
    for version in ("0.9.1", "0.10.0", "0.10.0rc1"):
        BuildFactory(name="torchmetrics", version=version, build_string=f"b{version}")
    content = client.get("/packages/torchmetrics/").content.decode()
    assert content.index("torchmetrics 0.10.0<") < content.index("torchmetrics 0.10.0rc1<")
    assert content.index("torchmetrics 0.10.0rc1<") < content.index("torchmetrics 0.9.1<")
    assert TorchRelease.objects.count() == 0


def test_package_page_with_an_unreadable_spec_shows_it_as_a_lint_error(client):
    # A real conda-forge noarch record (pytorch-lightning) carries this spec.
    package = PackageFactory(name="pytorch-lightning", latest_version="1.5.0")
    BuildFactory(
        name="pytorch-lightning",
        version="1.5.0",
        package=package,
        depends=["python >=3.6", "pytorch >=1.6", "fsspec[http] >2021.06.0"],
    )
    response = client.get("/packages/pytorch-lightning/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "spec-invalid" in content
    assert "fsspec[http] &gt;2021.06.0" in content
