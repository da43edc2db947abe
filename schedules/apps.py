from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"

    def ready(self):
        from . import signals  # noqa: F401  (an organization's new time zone moves the schedules that follow it)
