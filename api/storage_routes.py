"""/functions-storage: the organization's files, as the Storage tab and Functions see them.

Bytes never pass through these endpoints: each answers signed, expiring
addresses (api/signed.py) to PUT or GET the file itself.
"""

from ninja import Query, Router
from ninja.responses import Status, codes_4xx

from accounts.access import Area, token_require
from storage import services as storage
from storage.errors import AlreadyExists
from storage.models import StoredObject

from . import schemas
from .http import ApiProblem, cursor_decode, cursor_encode
from .signed import Kind, signed_url

router = Router(tags=["Functions storage"])

LIST_LIMIT_MAX = 1000


def _url(request, kind, organization, key):
    url, expires = signed_url(
        request, kind=kind, organization_id=organization.pk, target=key,
        actor_label=getattr(request, "api_token", None) and request.api_token.actor_label or "",
    )
    return {"url": url, "expiresAtTime": expires}


def _name(value, field="name"):
    try:
        return storage.validate_key(value)
    except storage.InvalidKey as invalid:
        raise ApiProblem(400, f"{field}: {invalid.message}") from None


@router.get("/functions-storage/ls", response={200: schemas.StorageList, codes_4xx: schemas.Error}, exclude_none=True,
            summary="List storage files", operation_id="listFunctionsStorageFiles")
def list_files(request, prefix: str | None = None, groupByFolder: bool | None = None, after: str | None = None,
               limit: int | None = Query(None, ge=1, le=LIST_LIMIT_MAX), includeDownloadUrls: bool | None = None, includeUploadUrls: bool | None = None):
    """Files by name under `prefix`; `groupByFolder` rolls deeper names into `folders`. `includeUploadUrls` needs Write Functions Storage."""
    token = request.api_token
    token_require(token, Area.STORAGE)
    if includeUploadUrls:
        token_require(token, Area.STORAGE, write=True)
    if limit is not None and not 1 <= limit <= LIST_LIMIT_MAX:
        raise ApiProblem(400, f"limit: must be a whole number from 1 to {LIST_LIMIT_MAX}.")
    prefix = prefix or ""
    if prefix:
        _name(prefix, "prefix")
    start_after = None
    if after:
        payload = cursor_decode("storage", after)
        if not isinstance(payload, list) or len(payload) != 2 or payload[0] != prefix:
            raise ApiProblem(400, "after: this cursor belongs to another listing (prefix): start again from the first page.")
        start_after = payload[1]
    listing = storage.object_list(
        organization=token.organization, prefix=prefix, delimiter="/" if groupByFolder else None,
        start_after=start_after, limit=limit or 100,
    )
    files = []
    for obj in listing.objects:
        entry = {"name": obj.key, "sizeBytes": obj.size, "modifiedAtTime": obj.last_modified}
        urls = []
        if includeDownloadUrls:
            urls.append({**_url(request, Kind.FILE_GET, token.organization, obj.key), "urlType": "download"})
        if includeUploadUrls:
            urls.append({**_url(request, Kind.FILE_PUT, token.organization, obj.key), "urlType": "upload"})
        if urls:
            entry["urls"] = urls
        files.append(entry)
    body = {
        "data": files,
        "pagination": {
            "endCursor": cursor_encode("storage", [prefix, listing.next_after]) if listing.is_truncated else "",
            "hasNextPage": listing.is_truncated,
        },
    }
    if groupByFolder:
        body["folders"] = [{"name": name} for name in listing.common_prefixes]
    return body


@router.get("/functions-storage/files", response={200: schemas.StorageDownloadEnvelope, codes_4xx: schemas.Error},
            summary="Get a download URL", operation_id="getFunctionStorageFile")
def get_file(request, name: str):
    token = request.api_token
    token_require(token, Area.STORAGE)
    obj = storage.object_get(organization=token.organization, key=_name(name))
    return {"data": {"name": obj.key, "downloadGet": _url(request, Kind.FILE_GET, token.organization, obj.key)}}


@router.post("/functions-storage/files", response={200: schemas.StorageUploadEnvelope, codes_4xx: schemas.Error},
             summary="Create a file (get its upload URL)", operation_id="createFunctionStorageFile")
def create_file(request, payload: schemas.StorageFileIn):
    """An upload URL for a new file; 409 when a file of that name exists (replace it with PUT)."""
    token = request.api_token
    token_require(token, Area.STORAGE, write=True)
    key = _name(payload.name)
    if StoredObject.objects.of(token.organization).filter(key=key).exists():
        raise AlreadyExists(f"A file named “{storage.shown(key)}” already exists: replace it with PUT /functions-storage/files.")
    return {"data": {"name": key, "uploadPut": _url(request, Kind.FILE_PUT, token.organization, key)}}


@router.put("/functions-storage/files", response={200: schemas.StorageUploadEnvelope, codes_4xx: schemas.Error},
            summary="Replace a file (get its upload URL)", operation_id="updateFunctionStorageFile")
def replace_file(request, name: str):
    """An upload URL replacing an existing file; 404 when there is none (create it with POST)."""
    token = request.api_token
    token_require(token, Area.STORAGE, write=True)
    obj = storage.object_get(organization=token.organization, key=_name(name))
    return {"data": {"name": obj.key, "uploadPut": _url(request, Kind.FILE_PUT, token.organization, obj.key)}}


@router.delete("/functions-storage/files", response={204: None, codes_4xx: schemas.Error}, summary="Delete a file",
               operation_id="deleteFunctionStorageFile")
def delete_file(request, name: str):
    token = request.api_token
    token_require(token, Area.STORAGE, write=True)
    key = _name(name)
    if not storage.object_delete(organization=token.organization, key=key):
        raise storage.ObjectNotFound(f"There is no file named “{storage.shown(key)}”.")
    return Status(204, None)
