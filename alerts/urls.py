from django.urls import path

from . import views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_list, name="list"),
    path("new/", views.alert_create, name="create"),
    path("<uuid:alert_id>/", views.alert_detail, name="detail"),
    path("<uuid:alert_id>/edit/", views.alert_edit, name="edit"),
    path("<uuid:alert_id>/delete/", views.alert_delete, name="delete"),
    path("<uuid:alert_id>/fire/", views.incident_fire, name="fire"),
    path("<uuid:alert_id>/incidents/live/", views.incidents_live, name="incidents_live"),
    path("<uuid:alert_id>/incidents/<uuid:incident_id>/replay/", views.incident_replay, name="replay"),
]
