"""The organization-wide Logs page, under /o/<org_id>/settings/developer/ (config/urls.py).

A Function's own Logs tab lives with the Function's other pages (functions/urls.py).
"""

from django.urls import path

from . import views

app_name = "logs"

urlpatterns = [
    path("logs/", views.organization_logs, name="org"),
    path("logs.json", views.organization_logs_json, name="org_json"),
]
