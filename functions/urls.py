from django.urls import include, path

from . import views

app_name = "functions"

urlpatterns = [
    path("", views.function_list, name="list"),
    path("storage/", include("storage.urls")),
]
