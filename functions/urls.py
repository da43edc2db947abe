from django.urls import include, path, register_converter

from logs import views as logs_views
from monitor import views as monitor_views
from schedules import views as schedule_views

from . import converters, run_views, views

register_converter(converters.FunctionNameConverter, "fname")

app_name = "functions"

# "storage/" and "new/" come before "<fname:name>/": the names they would
# shadow are reserved (functions.services.RESERVED_NAMES).
urlpatterns = [
    path("", views.function_list, name="list"),
    path("storage/", include("storage.urls")),
    path("new/", views.function_create, name="create"),
    path("<fname:name>/", views.function_detail, name="detail"),
    # The catalogue (functions.views): edit, delete, code versions, History.
    path("<fname:name>/edit/", views.function_edit, name="edit"),
    path("<fname:name>/delete/", views.function_delete, name="delete"),
    path("<fname:name>/versions/new/", views.version_upload, name="version_upload"),
    path("<fname:name>/versions/<int:number>/", views.version_browse, name="version"),
    path("<fname:name>/versions/<int:number>/files/<path:path>", views.version_file, name="version_file"),
    path("<fname:name>/versions/<int:number>/download/", views.version_download, name="version_download"),
    path("<fname:name>/versions/<int:number>/deploy/", views.version_deploy, name="version_deploy"),
    path("<fname:name>/history/", views.function_history, name="history"),
    # The Schedule tab (schedules.views)
    path("<fname:name>/schedule/", schedule_views.function_schedule, name="schedule"),
    path("<fname:name>/secrets/", include("secrets_vault.urls")),
    # Runs (functions.run_views)
    path("<fname:name>/run/", run_views.trigger, name="run_trigger"),
    path("<fname:name>/runs/", run_views.run_list, name="runs"),
    path("<fname:name>/runs/<uuid:correlation_id>/", run_views.run_detail, name="run_detail"),
    path("<fname:name>/runs/<uuid:correlation_id>/live/", run_views.run_live, name="run_live"),
    # Monitor (monitor.views): run health over time, and the opt-in to failure e-mails
    path("<fname:name>/monitor/", monitor_views.function_monitor, name="monitor"),
    path("<fname:name>/monitor/notices/", monitor_views.failure_subscription, name="failure_subscription"),
    # Logs (logs.views): the Logs tab and its JSON download
    path("<fname:name>/logs/", logs_views.function_logs, name="logs"),
    path("<fname:name>/logs.json", logs_views.function_logs_json, name="logs_json"),
]
