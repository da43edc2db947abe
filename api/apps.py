from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Public REST API"

    def ready(self):
        from . import signals  # noqa: F401 - connects the receivers
