"""SVG badges: per package and per package x PyTorch release, shields style, honest words."""

import xml.etree.ElementTree as ET

import pytest

from testing_app.views.badge_svg import render_badge
from testing_app.views.badge_svg import text_width
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def _texts(response) -> list[str]:
    root = ET.fromstring(response.content)
    return [node.text for node in root.iter(f"{SVG}text")]


@pytest.fixture
def axes():
    return make_axes()


def test_badge_says_passing_when_every_cell_passed(axes, client):
    fill_package(make_package("kornia", axes), axes, verdict="passed")
    response = client.get("/badges/kornia.svg")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert "max-age=300" in response["Cache-Control"]
    assert _texts(response) == ["pytorch", "pytorch", "passing", "passing"]
    assert "#1a7f37" in response.content.decode()


def test_badge_per_release_shows_that_release_only(axes, client):
    package = make_package("fastai", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    by_version = {r.version: r for r in axes.releases}
    record_cell(
        build=build,
        release=by_version["2.5.1"],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["failed"],
    )
    record_cell(
        build=build,
        release=by_version["2.4.1"],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["passed"],
    )
    record_cell(
        build=build,
        release=by_version["2.10.0"],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["failed", "queued"],
    )
    assert _texts(client.get("/badges/fastai/2.4.1.svg"))[2] == "passing"
    assert _texts(client.get("/badges/fastai/2.5.1.svg"))[:3] == ["pytorch 2.5.1"] * 2 + ["failing"]
    # A cell waiting for its retry is "queued", never "failing".
    assert _texts(client.get("/badges/fastai/2.10.0.svg"))[2] == "queued"
    assert _texts(client.get("/badges/fastai.svg"))[2] == "failing"


def test_badge_of_untested_and_unknown_names(axes, client):
    make_package("newcomer", axes)
    assert _texts(client.get("/badges/newcomer.svg"))[2] == "untested"
    response = client.get("/badges/nope.svg")
    assert response.status_code == 404
    assert _texts(response)[2] == "unknown package"
    response = client.get("/badges/newcomer/9.9.svg")
    assert response.status_code == 404
    assert _texts(response)[2] == "unknown release"


def test_badge_package_names_with_dots_resolve(axes, client):
    fill_package(make_package("ruamel.yaml", axes), axes, verdict="passed")
    assert _texts(client.get("/badges/ruamel.yaml.svg"))[2] == "passing"


def test_render_badge_escapes_text_and_sizes_to_it():
    svg = render_badge(label="a<b", message="x&y", colour="#000")
    root = ET.fromstring(svg)
    assert [t.text for t in root.iter(f"{SVG}text")][:2] == ["a<b", "a<b"]
    assert int(root.get("width")) == text_width("a<b") + text_width("x&y") + 24
    assert text_width("mmmm") > text_width("iiii")
