from django.urls import path

from . import views

# Included by functions/urls.py under "storage/", inside the `functions` namespace.
urlpatterns = [
    path("", views.browse, name="storage"),
    path("upload/", views.upload, name="storage_upload"),
    path("download/", views.download, name="storage_download"),
    path("preview/", views.preview, name="storage_preview"),
    path("folders/new/", views.folder_create, name="storage_folder_create"),
    path("folders/delete/", views.folder_delete, name="storage_folder_delete"),
    path("files/delete/", views.file_delete, name="storage_file_delete"),
]
