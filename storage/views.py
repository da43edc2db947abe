"""The Storage tab: browse, upload, download, preview and delete the organization's files.

Every view asks accounts.access first (404 for other organizations, 403 for
roles without the permission) and hands the work to storage.services.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from accounts.access import storage_for
from accounts.models import Organization

from . import services
from .errors import StorageError
from .forms import BrowseQuery, FolderDeleteForm, FolderForm, KeyForm, UploadForm
from .models import StoredObject, key_folder
from .uploads import UploadLimitHandler

PAGE_SIZE = 100

# Served as a download, these could still run script if a browser ever
# rendered them; they go out as opaque bytes.
_ACTIVE_TYPES = ("html", "xhtml", "svg", "xml", "javascript", "ecmascript", "xsl", "pdf")


def folder_url(org_id: int, prefix: str = "", **params: Any) -> str:
    query = {"prefix": prefix, **params} if prefix else params
    query = {k: v for k, v in query.items() if v not in (None, "")}
    url = reverse("functions:storage", kwargs={"org_id": org_id})
    return f"{url}?{urlencode(query)}" if query else url


def parent_of(prefix: str) -> str:
    return key_folder(prefix[:-1]) if prefix else ""


def _crumbs(prefix: str) -> list[tuple[str, str]]:
    """[(name, prefix)] for each folder from the top down to `prefix`."""
    crumbs, start = [], 0
    while (cut := prefix.find("/", start)) >= 0:
        crumbs.append((prefix[start:cut] or "(empty name)", prefix[: cut + 1]))
        start = cut + 1
    return crumbs


def _file_entry(obj: StoredObject, prefix: str) -> dict[str, Any]:
    return {"kind": "file", "key": obj.key, "name": obj.key[len(prefix):], "object": obj,
            "previewable": services.is_previewable(obj)}


def _folder_entry(common_prefix: str, prefix: str) -> dict[str, Any]:
    return {"kind": "folder", "key": common_prefix, "name": common_prefix[len(prefix):]}


def _parse_at(sort: str, raw: str | None) -> int | datetime | None:
    try:
        return int(raw) if sort == "size" else datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


@login_required
@require_GET
def browse(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, can_write = storage_for(request.user, org_id)
    query = BrowseQuery(request.GET)
    if not query.is_valid():
        for errors in query.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("functions:storage", org_id=org_id)
    prefix, name_filter = query.cleaned_data["prefix"], query.cleaned_data["q"]
    sort, order, after = query.cleaned_data["sort"], query.cleaned_data["order"], query.cleaned_data["after"]

    entries, next_url, more_folders = [], None, False
    keep = {"q": name_filter}
    if sort == "name":
        listing = services.object_list(
            organization=organization, prefix=prefix + name_filter, delimiter="/",
            start_after=after or None, limit=PAGE_SIZE,
        )
        by_key = [(cp, _folder_entry(cp, prefix)) for cp in listing.common_prefixes]
        # The folder's own marker (`prefix` itself) is the folder, not a file in it.
        by_key += [(o.key, _file_entry(o, prefix)) for o in listing.objects if not o.is_folder_marker]
        entries = [entry for _, entry in sorted(by_key, key=lambda pair: pair[0])]
        if listing.is_truncated:
            next_url = folder_url(org_id, prefix, after=listing.next_after, **keep)
    else:
        cursor = None
        if after:
            value = _parse_at(sort, query.cleaned_data["at"])
            cursor = (value, after) if value is not None else None
        if cursor is None:
            # Folders have no size or date: they head the first page, by name.
            folders, more_folders = services.subfolder_list(
                organization=organization, folder=prefix, name_prefix=name_filter, limit=PAGE_SIZE
            )
            entries = [_folder_entry(cp, prefix) for cp in folders]
        files, more = services.folder_files_sorted(
            organization=organization, folder=prefix, name_prefix=name_filter, sort=sort,
            descending=order == "desc", after=cursor, limit=PAGE_SIZE,
        )
        entries += [_file_entry(o, prefix) for o in files]
        if more:
            last = files[-1]
            at = last.size if sort == "size" else last.last_modified.isoformat()
            next_url = folder_url(org_id, prefix, sort=sort, order=order, after=last.key, at=at, **keep)

    usage = services.usage_bytes(organization=organization)
    quota = services.quota_bytes(organization=organization)

    def sort_url(column: str) -> str:
        if column == "name":
            return folder_url(org_id, prefix, **keep)
        flipped = "asc" if sort == column and order == "desc" else "desc"
        return folder_url(org_id, prefix, sort=column, order=flipped, **keep)

    return render(request, "storage/browse.html", {
        "tab": "storage",
        "can_write": can_write,
        "prefix": prefix,
        "name_filter": name_filter,
        "crumbs": _crumbs(prefix),
        "parent_url": folder_url(org_id, parent_of(prefix)) if prefix else None,
        "entries": entries,
        "more_folders": more_folders,
        "sort": sort,
        "order": order,
        "sort_urls": {c: sort_url(c) for c in ("name", "size", "modified")},
        "next_url": next_url,
        "first_url": folder_url(org_id, prefix, sort=None if sort == "name" else sort,
                                order=None if sort == "name" else order, **keep) if after else None,
        "usage": usage,
        "quota": quota,
        "usage_percent": min(100, round(usage * 100 / quota)) if quota else 100,
        "free_bytes": max(quota - usage, 0),
        "max_file_bytes": services.max_object_bytes(),
        # Django refuses a request with more files than this before any view runs.
        "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES or "",
        "upload_form": UploadForm(initial={"prefix": prefix}),
        "folder_form": FolderForm(initial={"prefix": prefix}),
    })


# --- upload ---


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _upload_answer(
    request: HttpRequest,
    org_id: int,
    prefix: str,
    *,
    status: int,
    message: str,
    level: int = messages.ERROR,
    **data: Any,
) -> HttpResponse:
    """The script gets JSON it can act on; a plain form post gets a message and the folder again."""
    target = folder_url(org_id, prefix)
    if _wants_json(request):
        payload = {"message": message, **data}
        if status == 200:
            payload["redirect"] = target
            messages.add_message(request, level, message)
        return JsonResponse(payload, status=status)
    messages.add_message(request, level, message)
    return redirect(target)


@csrf_exempt  # checked by _upload, after the size limits are in place
@login_required
@require_POST
def upload(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, _ = storage_for(request.user, org_id, write=True)
    # Before anything reads the body: an upload that can never fit stops while it arrives.
    limit = UploadLimitHandler(request, organization=organization)
    request.upload_handlers.insert(0, limit)
    return _upload(request, org_id, organization, limit)


def _posted_folder(request: HttpRequest) -> str:
    """The folder the form was posted from, if it names one, to go back to after a refusal."""
    try:
        return services.validate_folder(request.POST.get("prefix", ""))
    except StorageError:
        return ""


@csrf_protect
def _upload(request: HttpRequest, org_id: int, organization: Organization, limit: int) -> HttpResponse:
    request.FILES  # noqa: B018 - reads the body through the limit handler, if CSRF did not already
    if limit.refusal is not None:
        return _upload_answer(request, org_id, _posted_folder(request), status=413, message=limit.refusal.message)
    if request.POST.get("check") == "1":
        return _upload_check(request, organization)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        message = " ".join(error for errors in form.errors.values() for error in errors)
        return _upload_answer(request, org_id, _posted_folder(request), status=400, message=message)
    prefix = form.cleaned_data["prefix"]
    files = form.cleaned_data["files"]
    items = [(prefix + upload.name, upload.size) for upload in files]
    try:
        plan = services.upload_plan(organization=organization, items=items)
    except StorageError as error:
        return _upload_answer(request, org_id, prefix, status=400, message=error.message)
    if plan.existing and not form.cleaned_data["replace"]:
        names = ", ".join(f"“{services.shown(key[len(prefix):])}”" for key in plan.existing)
        return _upload_answer(
            request, org_id, prefix, status=409,
            message=f"Already here: {names}. Nothing was uploaded. To overwrite, tick “Replace files that "
                    "already exist” and upload again.",
            existing=[key[len(prefix):] for key in plan.existing],
        )
    stored = []
    for upload_file in files:
        try:
            services.object_put(
                organization=organization, key=prefix + upload_file.name, fileobj_or_bytes=upload_file,
                size=upload_file.size, content_type=upload_file.content_type, writer_user=request.user,
            )
        except StorageError as error:
            done = f" Stored before it: {', '.join(stored)}." if stored else " Nothing was stored."
            return _upload_answer(request, org_id, prefix, status=400, message=error.message + done)
        stored.append(upload_file.name)
    where = f"“{prefix}”" if prefix else "the top folder"
    count = f"{len(stored)} files" if len(stored) != 1 else f"“{stored[0]}”"
    replaced = f" ({len(plan.existing)} replaced)" if plan.existing else ""
    return _upload_answer(request, org_id, prefix, status=200, level=messages.SUCCESS,
                          message=f"Uploaded {count} to {where}{replaced}.")


def _upload_check(request: HttpRequest, organization: Organization) -> JsonResponse:
    """The script's question before it sends any byte: would these names and sizes be accepted?

    Answers {"existing": [names it would replace]} or 400 {"message"}; stores nothing.
    The upload itself is checked again in full.
    """
    try:
        prefix = services.validate_folder(request.POST.get("prefix", ""))
        names, sizes = request.POST.getlist("name"), request.POST.getlist("size")
        if not names or len(names) != len(sizes):
            raise services.InvalidKey("Choose at least one file to upload.")
        try:
            items = [(prefix + name, int(size)) for name, size in zip(names, sizes, strict=True)]
        except ValueError:
            raise services.InvalidKey("A file size is not a number.") from None
        plan = services.upload_plan(organization=organization, items=items)
    except StorageError as error:
        return JsonResponse({"message": error.message}, status=400)
    return JsonResponse({"existing": [key[len(prefix):] for key in plan.existing]})


# --- download and preview ---


def _object_for(request: HttpRequest, org_id: int, organization: Organization) -> StoredObject:
    form = KeyForm(request.GET)
    if not form.is_valid():
        raise Http404("Say which file: ?key=…")
    try:
        return services.object_get(organization=organization, key=form.cleaned_data["key"])
    except StorageError:
        raise Http404("There is no such file.") from None


@login_required
@require_GET
def download(request: HttpRequest, org_id: int) -> HttpResponseBase:
    organization, _ = storage_for(request.user, org_id)
    obj = _object_for(request, org_id, organization)
    content_type = obj.content_type
    if any(marker in content_type.lower() for marker in _ACTIVE_TYPES):
        content_type = "application/octet-stream"
    name = posixpath.basename(obj.key.rstrip("/")) or "download"
    response = FileResponse(services.object_open(obj), as_attachment=True, filename=name, content_type=content_type)
    response.block_size = services.CHUNK_SIZE
    response["Content-Length"] = str(obj.size)
    response["ETag"] = f'"{obj.etag}"'
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser ignored "attachment", the bytes could not run script as this site.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def preview(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, can_write = storage_for(request.user, org_id)
    obj = _object_for(request, org_id, organization)
    return render(request, "storage/preview.html", {
        "tab": "storage",
        "can_write": can_write,
        "object": obj,
        "preview": services.object_preview(obj),
        "preview_limit": services.PREVIEW_MAX_BYTES,
        "crumbs": _crumbs(obj.folder),
        "folder_url": folder_url(org_id, obj.folder),
    })


# --- changes ---


@login_required
@require_POST
def folder_create(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, _ = storage_for(request.user, org_id, write=True)
    form = FolderForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(folder_url(org_id, _posted_folder(request)))
    try:
        services.folder_create(organization=organization, prefix=form.key(), writer_user=request.user)
    except StorageError as error:
        messages.error(request, error.message)
        return redirect(folder_url(org_id, form.cleaned_data["prefix"]))
    messages.success(request, f"Created the folder “{form.key()}”.")
    return redirect(folder_url(org_id, form.key()))


@login_required
@require_POST
def file_delete(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, _ = storage_for(request.user, org_id, write=True)
    form = KeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say which file to delete.")
        return redirect("functions:storage", org_id=org_id)
    key = form.cleaned_data["key"]
    if services.object_delete(organization=organization, key=key):
        messages.success(request, f"Deleted “{services.shown(key)}”.")
    else:
        messages.error(request, f"There is no file named “{services.shown(key)}”; nothing was deleted.")
    return redirect(folder_url(org_id, key_folder(key)))


@login_required
def folder_delete(request: HttpRequest, org_id: int) -> HttpResponse:
    organization, _ = storage_for(request.user, org_id, write=True)
    form = FolderDeleteForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("functions:storage", org_id=org_id)
    prefix = form.cleaned_data["prefix"]
    if not services.folder_exists(organization=organization, prefix=prefix):
        messages.error(request, f"There is no folder named “{services.shown(prefix)}”.")
        return redirect(folder_url(org_id, parent_of(prefix)))
    if request.method == "POST":
        deleted = services.folder_delete(organization=organization, prefix=prefix)
        files = "1 file" if deleted == 1 else f"{deleted:,} files"
        messages.success(request, f"Deleted the folder “{prefix}” and the {files} in it.")
        return redirect(folder_url(org_id, parent_of(prefix)))
    files, total = services.folder_summary(organization=organization, prefix=prefix)
    return render(request, "storage/folder_delete.html", {
        "tab": "storage",
        "can_write": True,
        "prefix": prefix,
        "files": files,
        "total": total,
        "crumbs": _crumbs(prefix),
        "cancel_url": folder_url(org_id, prefix),
    })
