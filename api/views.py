"""The signed addresses' own endpoint: PUT raw bytes or GET them, without an Authorization header."""

from django.http import FileResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Organization
from functions.models import CodeVersion, Function
from functions.services import code_version_open
from storage import services as storage

from . import services
from .http import error_response
from .signed import Kind, SignedUrlRefused, signed_grant


def _length(request):
    try:
        return int(request.headers.get("Content-Length", ""))
    except ValueError:
        return None


@csrf_exempt
def signed(request, token):
    method = request.method
    if method == "HEAD":
        method = "GET"
    if method not in ("GET", "PUT"):
        return error_response(request, 405, "Signed addresses take PUT (upload) or GET (download).")
    try:
        grant = signed_grant(token, method=method)
    except SignedUrlRefused as refused:
        return error_response(request, 403, str(refused))
    organization = Organization.objects.filter(pk=grant.organization_id).first()
    if organization is None:
        return error_response(request, 404, "This organization no longer exists.")

    if grant.kind == Kind.CODE_PUT:
        function = Function.objects.filter(organization=organization, pk=grant.target).first()
        if function is None:
            return error_response(request, 404, "This Function no longer exists.")
        try:
            size = services.code_package_store(function=function, stream=request, length=_length(request))
        except services.CodePackageTooLarge as too_large:
            return error_response(request, 413, str(too_large))
        return JsonResponse({"data": {"name": function.name, "sizeBytes": size}})

    if grant.kind == Kind.CODE_GET:
        version = CodeVersion.objects.filter(function__organization=organization, pk=grant.target).select_related("function").first()
        if version is None:
            return error_response(request, 404, "This code version no longer exists.")
        return FileResponse(
            code_version_open(version), as_attachment=True,
            filename=f"{version.function.name}-v{version.number}.zip", content_type="application/zip",
        )

    if grant.kind == Kind.FILE_PUT:
        try:
            obj = storage.object_put(
                organization=organization, key=grant.target, fileobj_or_bytes=request, size=_length(request),
                content_type=request.headers.get("Content-Type", ""), writer_label=grant.actor_label,
            )
        except storage.StorageError as refused:
            status = 413 if isinstance(refused, (storage.ObjectTooLarge, storage.QuotaExceeded)) else refused.status
            return error_response(request, status, refused.message)
        return JsonResponse({"data": {"name": obj.key, "sizeBytes": obj.size}})

    try:
        obj = storage.object_get(organization=organization, key=grant.target)
    except storage.ObjectNotFound as missing:
        return error_response(request, 404, missing.message)
    response = FileResponse(storage.object_open(obj), content_type=obj.content_type or "application/octet-stream")
    response["Content-Length"] = str(obj.size)
    return response

