"""SAMPLE module (tests/testing_app/recipes/python-samples)."""

VERSION = "1.0.0"
