from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("organization/", views.organization_settings, name="organization"),
    path("members/", views.members, name="members"),
    path("members/<int:pk>/role/", views.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path("members/<int:pk>/resend/", views.invitation_resend, name="invitation_resend"),
    path("members/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("roles/", views.roles, name="roles"),
    path("roles/<int:pk>/", views.role_edit, name="role_edit"),
    path("roles/<int:pk>/delete/", views.role_delete, name="role_delete"),
    path("developer/api-tokens/", views.api_tokens, name="api_tokens"),
    path("developer/api-tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
