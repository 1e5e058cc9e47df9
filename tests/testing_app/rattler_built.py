"""Packages built by the real rattler-build (py-rattler-build) from the v1 recipes in
tests/testing_app/recipes, offline against file:// channels."""

from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent / "recipes"


def build_v1(name: str, *, output_dir: Path, channels: list[str]) -> Path:
    """Build recipes/<name>/recipe.yaml (its tests are not run here) and return the file."""
    rattler_build = pytest.importorskip("rattler_build")
    (variant,) = rattler_build.Stage0Recipe.from_file(RECIPES / name / "recipe.yaml").render(
        rattler_build.VariantConfig()
    )
    variant.run_build(
        output_dir=output_dir,
        channels=channels,
        tool_config=rattler_build.ToolConfiguration(test_strategy="skip"),
    )
    (built,) = output_dir.rglob(f"{name}-*.conda")
    return built
