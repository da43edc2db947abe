"""The NinjaAPI instance served under /api: Samsara's Functions API paths, no version prefix.

OpenAPI 3 at /api/openapi.json, rendered at /api/docs with django-ninja's
Swagger UI served from static files (no CDN, no inline script).
"""

from ninja import NinjaAPI

from . import alert_routes, function_routes, storage_routes
from .http import TokenAuth, install_error_handlers

api = NinjaAPI(
    title="Functions API",
    version="1",
    description=(
        "Samsara's Functions API (beta), served by this platform, plus a few endpoints for scripts. "
        "Authenticate with `Authorization: Bearer <API token>`; every success is wrapped in `{\"data\": ...}`; "
        "errors are `{\"message\", \"requestId\"}`. Unknown request fields are ignored; wrong types are refused "
        "with 400 naming the field."
    ),
    auth=TokenAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)
api.add_router("", function_routes.router)
api.add_router("", storage_routes.router)
api.add_router("", alert_routes.router)
