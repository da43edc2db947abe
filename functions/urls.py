from django.urls import include, path, register_converter

from . import converters, views

register_converter(converters.FunctionNameConverter, "fname")

app_name = "functions"

# "storage/" comes before "<fname:name>/": the names it would shadow are
# reserved (functions.services.RESERVED_NAMES).
urlpatterns = [
    path("", views.function_list, name="list"),
    path("storage/", include("storage.urls")),
    path("<fname:name>/", views.function_detail, name="detail"),
    path("<fname:name>/secrets/", include("secrets_vault.urls")),
]
