from django.urls import path

from . import views
from .api import api

urlpatterns = [
    path("signed/<str:token>", views.signed, name="api-signed"),
    path("", api.urls),
]
