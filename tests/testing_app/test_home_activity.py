"""The home page: recent runs, failures and promotions, and a link from every count."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_package

pytestmark = pytest.mark.django_db


def test_home_links_every_count_and_the_latest_failures_to_their_cells(client):
    axes = make_axes()
    fill_package(make_package("kornia", axes), axes, verdict="failed")
    fill_package(make_package("fastai", axes), axes, verdict="passed")
    with CaptureQueriesContext(connection) as captured:
        content = client.get("/").content.decode()
    counts = content.split('class="counts"')[1].split("</ul>")[0]
    assert counts.count("<li>") == counts.count("<li><a href=")  # every count is a link
    assert '<a href="/matrix/?status=failing"><strong>12</strong> failing cells</a>' in counts
    failures = content.split('id="recent-failures"')[1].split("</section>")[0]
    assert failures.count("/matrix/cell/kornia/") == 5
    assert "fastai" not in failures
    assert 'href="/runs/' in content.split('id="recent-runs"')[1]
    assert "No promotion yet." in content
    fill_package(make_package("mmf", axes), axes, verdict="failed")
    with CaptureQueriesContext(connection) as again:
        client.get("/")
    assert len(again) == len(captured)
