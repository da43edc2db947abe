from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views as account_views
from functions import run_views

from .health import healthz
from .views import favicon

handler403 = "accounts.views.permission_denied"

org_settings = [
    path("developer/functions/", include("functions.urls")),
    # The organization-wide Logs page: developer/logs/ (no Function name to reserve).
    path("developer/", include("logs.urls")),
    # The organization-wide Runs page (functions.run_views).
    path("developer/runs/", run_views.organization_runs, name="organization_runs"),
    path("alerts/", include("alerts.urls")),
    path("", include("accounts.urls")),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reset/<uidb64>/<token>/", account_views.SetPasswordView.as_view(), name="password_reset_confirm"),
    path("o/<int:org_id>/", account_views.org_home, name="org_home"),
    path("o/<int:org_id>/settings/", include(org_settings)),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/", include("api.urls")),
]
