# Included from functions/urls.py under "<name>/secrets/", in the `functions` namespace.
from django.urls import path

from . import views

urlpatterns = [
    path("", views.secret_list, name="secrets"),
    path("<int:secret_id>/", views.secret_edit, name="secret_edit"),
    path("<int:secret_id>/value/", views.secret_value, name="secret_value"),
    path("<int:secret_id>/rename/", views.secret_rename, name="secret_rename"),
    path("<int:secret_id>/delete/", views.secret_delete, name="secret_delete"),
]
