"""What every endpoint shares: the bearer-token auth, the per-token rate limit, request ids and JSON errors.

Every error is {"message", "requestId"} with its status; the message names
the field at fault (400), the missing scope (403), or what to do next.
"""

import logging
import uuid

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from accounts.services import ApiTokenRefused, api_token_authenticate
from accounts.throttle import token_auth_failed, token_auth_throttled
from storage.errors import ObjectTooLarge, QuotaExceeded, StorageError

from .idempotency import IdempotencyKeyReused
from .ratelimit import rate_limit_hit

logger = logging.getLogger(__name__)


class ApiProblem(Exception):
    """An error answer: status, message and extra headers (Retry-After)."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def request_id(request):
    if not hasattr(request, "api_request_id"):
        request.api_request_id = str(uuid.uuid4())
    return request.api_request_id


def error_response(request, status, message, headers=None):
    response = JsonResponse({"message": message, "requestId": request_id(request)}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    response["X-Request-Id"] = request_id(request)
    return response


def rate_limited(message, retry_after):
    return ApiProblem(429, f"{message} Retry after {retry_after} s.", {"Retry-After": str(retry_after)})


class TokenAuth(HttpBearer):
    """Authorization: Bearer sfn_... -> the ApiToken (also on request.api_token), counted against its rate limit."""

    openapi_description = "An API token from Settings → Developer → API tokens (starts with sfn_)."

    def authenticate(self, request, token):
        # An address that keeps presenting unknown tokens is refused before any lookup,
        # at the same limit and cool-off as wrong passwords (accounts/throttle.py).
        wait = token_auth_throttled(request=request)
        if wait:
            raise rate_limited("Too many requests with unknown, expired or revoked tokens from this address.", wait)
        try:
            api_token = api_token_authenticate(token)
        except ApiTokenRefused as refused:
            token_auth_failed(request=request)
            raise ApiProblem(401, str(refused)) from None
        verdict = rate_limit_hit(key=f"token:{api_token.pk}", limit=settings.API_RATE_LIMIT_PER_SECOND, seconds=1)
        if not verdict.allowed:
            raise rate_limited(
                f"This token made more than {settings.API_RATE_LIMIT_PER_SECOND} requests in one second.", verdict.retry_after
            )
        request.api_token = api_token
        return api_token


def _field_path(loc):
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[2:] if len(parts) > 2 else parts[1:]
    elif parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _validation_message(errors):
    lines = []
    for error in errors[:10]:
        field = _field_path(error.get("loc", ()))
        message = error.get("msg", "is not valid")
        if error.get("type") == "missing":
            message = "is required"
        elif error.get("type") in ("json_invalid", "model_attributes_type", "dict_type") and field == "body":
            message = "must be a JSON object"
        lines.append(f"{field}: {message}")
    return "; ".join(lines)


def _django_validation_message(error):
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
                         for field, messages in error.message_dict.items())
    return " ".join(error.messages)


def install_error_handlers(api):
    @api.exception_handler(ApiProblem)
    def _problem(request, exc):
        return error_response(request, exc.status, exc.message, exc.headers)

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request, exc):
        return error_response(
            request, 401,
            "Send an API token as “Authorization: Bearer <token>”. Create one in Settings → Developer → API tokens.",
        )

    @api.exception_handler(HttpError)
    def _http_error(request, exc):
        message = str(exc)
        if message.startswith("Cannot parse request body"):
            message = "body: the request body must be a JSON object (it could not be parsed as JSON)."
        return error_response(request, exc.status_code, message)

    @api.exception_handler(NinjaValidationError)
    def _invalid(request, exc):
        return error_response(request, 400, _validation_message(exc.errors))

    @api.exception_handler(DjangoValidationError)
    def _refused(request, exc):
        return error_response(request, 400, _django_validation_message(exc))

    @api.exception_handler(Http404)
    def _not_found(request, exc):
        return error_response(request, 404, str(exc) or "Not found.")

    @api.exception_handler(PermissionDenied)
    def _forbidden(request, exc):
        return error_response(request, 403, str(exc) or "This token may not do that.")

    @api.exception_handler(IdempotencyKeyReused)
    def _reused(request, exc):
        return error_response(request, 422, str(exc))

    @api.exception_handler(StorageError)
    def _storage(request, exc):
        status = 413 if isinstance(exc, (ObjectTooLarge, QuotaExceeded)) else exc.status
        return error_response(request, status, exc.message)

    @api.exception_handler(Exception)
    def _unexpected(request, exc):
        from django.core.exceptions import RequestDataTooBig

        if isinstance(exc, RequestDataTooBig):
            return error_response(
                request, 413,
                f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024 // 1024} MB: send less.",
            )
        logger.exception("API request %s failed", request_id(request))
        return error_response(request, 500, "Something went wrong on our side; quote the requestId when you report it.")


# --- cursors: opaque, signed, so a changed one is refused instead of guessed at ---


def cursor_encode(kind, value):
    return signing.Signer(salt=f"api.cursor.{kind}").sign_object(value)


def cursor_decode(kind, value, *, field="after"):
    try:
        return signing.Signer(salt=f"api.cursor.{kind}").unsign_object(value)
    except (signing.BadSignature, ValueError, TypeError):
        raise ApiProblem(
            400, f"{field}: this cursor is not valid (it was changed, cut short or belongs to another list): "
            "start again from the first page."
        ) from None
