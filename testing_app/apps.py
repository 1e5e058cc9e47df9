"""App config for hosts, runs, results and promotion."""

from django.apps import AppConfig


class TestingAppConfig(AppConfig):
    name = "testing_app"
    verbose_name = "Testing and promotion"
