"""The catalogue's pages: the List tab, create and import, a Function's Overview, edit,
delete, its code versions (browse, view a file, download, deploy) and History.

Thin on purpose: access through accounts.access, rules in services.py.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import Area, function_for, may_write, require
from accounts.models import Organization
from accounts.forms import apply_service_errors
from monitor.queries import function_list_health
from secrets_vault.services import secrets_missing_values

from schedules import rules as schedule_rules
from schedules import services as schedule_services

from . import queries, services
from .bundles.errors import BundleError
from .bundles.metadata import METADATA_FILENAME, MetadataError, read_import_metadata
from .forms import FunctionForm, ImportForm, ParameterRows, UploadForm
from .models import CodeVersion, Function, RunStatus

LIST_PAGE_SIZE = 25
HISTORY_PAGE_SIZE = 50
RUN_BADGES = {
    RunStatus.SUCCEEDED: "ok", RunStatus.FAILED: "bad", RunStatus.TIMED_OUT: "bad",
    RunStatus.RUNNING: "warn", RunStatus.QUEUED: "", RunStatus.DROPPED: "",
}


def _apply_errors(form: forms.Form, error: ValidationError) -> None:
    """apply_service_errors, with the parameters' errors shown beside the parameter rows."""
    if hasattr(error, "error_dict") and hasattr(form, "parameters") and "params" in error.error_dict:
        rest = {field: errors for field, errors in error.error_dict.items() if field != "params"}
        if not form.parameters.has_errors:  # the rows already say it, next to the inputs
            form.parameters.add_errors([m for e in error.error_dict["params"] for m in e.messages])
        if not rest:
            return
        error = ValidationError(rest)
    apply_service_errors(form, error)


def _keep_sound_zip(form: forms.Form, organization: Organization, uploaded: UploadedFile | None) -> None:
    """After a refused Create or Upload: keep a sound zip for the next try (its sha256 and name go into
    the form's hidden fields), so fixing another field does not mean choosing the file again; a zip that
    is itself wrong is not kept."""
    form.data = form.data.copy()
    if uploaded is not None and "bundle" not in form.errors:
        try:
            info = services.staged_upload_save(organization=organization, bundle=uploaded)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            form.data["staged_sha256"], form.data["staged_filename"] = info.sha256, uploaded.name
    if "bundle" in form.errors:
        form.data["staged_sha256"] = form.data["staged_filename"] = ""


def _has_errors(form: forms.Form) -> bool:
    return bool(form.errors) or bool(getattr(form, "parameters", None) and form.parameters.has_errors)


# --------------------------------------------------------------------------- list


@login_required
def function_list(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.FUNCTIONS)
    organization = membership.organization
    search = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "name")
    sort = sort if sort in queries.LIST_SORTS else "name"
    now = timezone.now()
    page = Paginator(queries.function_list_rows(organization, search=search, sort=sort, now=now), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    labels = dict(RunStatus.choices)
    health = function_list_health([f.pk for f in page.object_list], now=now)
    rows = [
        {
            "function": f,
            "badge": RUN_BADGES.get(f.last_run_status, ""),
            "status_label": labels.get(f.last_run_status, f.last_run_status),
            "schedule": _schedule_summary(f),
            "health": health[f.pk],
        }
        for f in page.object_list
    ]
    return render(
        request,
        "functions/list.html",
        {
            "page": page,
            "rows": rows,
            "search": search,
            "sort": sort,
            "any_functions": bool(rows) or Function.objects.of(organization).exists(),
            "can_write": may_write(membership, Area.FUNCTIONS),
            "tab": "list",
        },
    )


def _schedule_summary(function: Function) -> str:
    """The schedule in a few words for the List tab and Overview: its next run, or why there is none."""
    schedule = schedule_services.schedule_of(function)
    if not schedule.items:
        return ""
    if not schedule.enabled:
        return "Disabled"
    if schedule.next_occurrence_at is None:
        return ""
    local = schedule.next_occurrence_at.astimezone(schedule_services.schedule_zone(schedule))
    return f"Next run {local:%a %-d %b, %H:%M} ({local.tzname()})"


# --------------------------------------------------------------------------- create and import


def _render_create(
    request: HttpRequest,
    form: forms.Form,
    organization: Organization,
    *,
    status: int = 200,
) -> HttpResponse:
    data = form.data if form.is_bound else form.initial
    preview = None
    if _truthy(data.get("from_import")) and data.get("staged_sha256"):
        preview = _import_preview(organization, data.get("staged_sha256"))
    return render(
        request,
        "functions/create.html",
        {"form": form, "parameters": form.parameters, "import_preview": preview, "tab": "list",
         "staged_sha256": data.get("staged_sha256") or "", "staged_filename": data.get("staged_filename") or ""},
        status=status,
    )


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on")


def _import_preview(organization: Organization, sha256: str) -> dict[str, Any] | None:
    """What the review page shows of the parts of the metadata the form does not carry."""
    try:
        with services.staged_upload_open(organization=organization, sha256=sha256) as bundle:
            metadata = read_import_metadata(bundle)
    except (ValidationError, BundleError, OSError):
        return None
    if metadata is None:
        return None
    return {
        "secret_names": metadata.secret_names,
        "scheduling_enabled": metadata.scheduling_enabled,
        "schedule_entries": [
            schedule_rules.describe(schedule_rules.Entry(e.days_of_week, e.time_since_midnight_ms))
            for e in metadata.schedule_entries
        ],
    }


@login_required
def function_create(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.FUNCTIONS, write=True)
    organization = membership.organization
    if "import" in request.GET:
        return _import_upload(request, organization)
    if request.method != "POST":
        form = FunctionForm(initial={"visible_to_customers": False}, parameters=ParameterRows.from_stored([]))
        return _render_create(request, form, organization)

    form = FunctionForm(request.POST, request.FILES, parameters=ParameterRows.from_post(request.POST))
    uploaded = request.FILES.get("bundle")
    form.is_valid()
    # Wrong parameter rows are marked already; the services still check the
    # other fields, so the page reports every problem at once.
    if not form.errors:
        data = form.cleaned_data
        staged = None
        try:
            if uploaded is None and data["staged_sha256"]:
                staged = services.staged_upload_open(organization=organization, sha256=data["staged_sha256"])
            bundle = uploaded or staged
            fields = dict(
                organization=organization, actor=request.user, name=data["name"], description=data["description"],
                handler=data["handler"], bundle=bundle, event_parameters=form.parameters.pairs(),
                visible_to_customers=data["visible_to_customers"], message=data["message"],
                timeout_seconds=data["timeout_seconds"],
            )
            if data["from_import"]:
                # One transaction: a schedule the rules refuse leaves no Function behind.
                with transaction.atomic():
                    function, secret_names, secrets_created = services.function_import(**fields)
                    try:
                        schedule_services.schedule_import(
                            function=function, imported=function.imported_schedule, actor=request.user
                        )
                    except ValidationError as error:
                        raise ValidationError({"bundle": [
                            f"{METADATA_FILENAME}, {path}: {message}"
                            for path, messages_ in error.message_dict.items() for message in messages_
                        ]}) from None
            else:
                function, secret_names, secrets_created = services.function_create(**fields), (), False
        except ValidationError as error:
            _apply_errors(form, error)
        finally:
            if staged is not None:
                staged.close()
        if not _has_errors(form):
            if data["staged_sha256"]:
                services.staged_upload_delete(organization=organization, sha256=data["staged_sha256"])
            messages.success(request, f"Created {function.name} with version 1 deployed.")
            if secret_names and not secrets_created:
                messages.warning(
                    request,
                    "The bundle names secrets (" + ", ".join(secret_names) + "): add them on the Secrets tab.",
                )
            return redirect("functions:detail", org_id=organization.id, name=function.name)

    _keep_sound_zip(form, organization, uploaded)
    return _render_create(request, form, organization, status=400)


def _import_upload(request: HttpRequest, organization: Organization) -> HttpResponse:
    """Step one of an import: a bundle with import.metadata.json, read into a form to review."""
    posted = request.method == "POST"
    form = ImportForm(request.POST if posted else None, request.FILES if posted else None)
    if posted and form.is_valid():
        uploaded = request.FILES.get("bundle")
        metadata = None
        if uploaded is None:
            form.add_error("bundle", "Choose the bundle (.zip) to import.")
        else:
            try:
                metadata = read_import_metadata(uploaded)
            except MetadataError as exc:
                form.add_error("bundle", services.metadata_error_messages(exc))
            except BundleError as exc:
                form.add_error("bundle", exc.message)
            else:
                if metadata is None:
                    form.add_error(
                        "bundle",
                        f"This zip has no {METADATA_FILENAME} at its root. To create a Function from "
                        "plain code, use Create Function instead.",
                    )
        if metadata is not None:
            try:
                info = services.staged_upload_save(organization=organization, bundle=uploaded)
            except ValidationError as error:
                _apply_errors(form, error)
            else:
                review = FunctionForm(
                    initial={
                        "name": metadata.name or "",
                        "description": metadata.description,
                        "handler": metadata.handler or "",
                        "visible_to_customers": False,
                        "staged_sha256": info.sha256,
                        "staged_filename": uploaded.name,
                        "from_import": True,
                    },
                    parameters=ParameterRows.from_stored(
                        [{"name": k, "value": v} for k, v in metadata.event_parameters.items()]
                    ),
                )
                return _render_create(request, review, organization)
    return render(
        request, "functions/import.html", {"form": form, "tab": "list"}, status=400 if form.errors else 200
    )


# --------------------------------------------------------------------------- one Function


def _frame(function: Function, can_write: bool, tab: str, **context: Any) -> dict[str, Any]:
    return {"function": function, "can_write": can_write, "tab": tab, **context}


@login_required
def function_detail(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    return render(
        request,
        "functions/detail.html",
        _frame(
            function, can_write, "overview",
            versions=queries.function_versions(function),
            schedule_summary=_schedule_summary(function),
            recent_runs=queries.function_recent_runs(function),
            last_error=queries.function_last_error(function),
            ever_succeeded=queries.function_ever_succeeded(function),
            missing_secrets=secrets_missing_values(function=function),
            api_examples=_api_examples(request, function),
            alerts=queries.function_alerts(function),
        ),
    )


def _api_examples(request, function):
    """The details page's "API" section: a curl command and an SDK snippet that start a run of this Function."""
    import json
    import shlex
    from urllib.parse import quote

    base = request.build_absolute_uri("/api")
    body = json.dumps({"paramsOverride": function.parameters_dict})
    curl = (
        f"curl -X POST {shlex.quote(f'{base}/functions/{quote(function.name)}/runs?wait=30')} \\\n"
        '  -H "Authorization: Bearer $SAMSARA_API_TOKEN" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )
    sdk = (
        "import os\n"
        "from samsara import Samsara\n\n"
        f"client = Samsara(token=os.environ[\"SAMSARA_API_TOKEN\"], base_url={base!r})\n"
        f"started = client.beta_ap_is.start_function_run(name={function.name!r}, params_override={function.parameters_dict!r})\n"
        f"run = client.beta_ap_is.get_function_run(name={function.name!r}, correlation_id=started.data.correlation_id)\n"
        "print(run.data.status)"
    )
    return {"base": base, "curl": curl, "sdk": sdk}


@login_required
def function_edit(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name, write=True)
    if request.method == "POST":
        form = FunctionForm(request.POST, parameters=ParameterRows.from_post(request.POST))
        form.is_valid()
        if not form.errors:
            data = form.cleaned_data
            if data["name"] and data["name"] != function.name:
                form.add_error(
                    "name",
                    f"A Function's name cannot be changed after creation: this one stays {function.name}. "
                    "To use another name, create a new Function.",
                )
            else:
                try:
                    services.function_update(
                        function=function, actor=request.user, revision=data["revision"],
                        description=data["description"], handler=data["handler"],
                        event_parameters=form.parameters.pairs(),
                        visible_to_customers=data["visible_to_customers"], timeout_seconds=data["timeout_seconds"],
                        tmp_mb=data["tmp_mb"],
                    )
                except ValidationError as error:
                    _apply_errors(form, error)
                else:
                    messages.success(request, f"Saved {function.name}.")
                    return redirect("functions:detail", org_id=org_id, name=function.name)
    else:
        form = FunctionForm(
            initial={
                "name": function.name, "description": function.description, "handler": function.handler,
                "visible_to_customers": function.visible_to_customers,
                "timeout_seconds": function.timeout_seconds, "tmp_mb": function.tmp_mb,
                "revision": function.revision,
            },
            parameters=ParameterRows.from_stored(function.event_parameters),
        )
    return render(
        request,
        "functions/edit.html",
        _frame(function, can_write, "overview", form=form, parameters=form.parameters,
               alerts=queries.function_alerts(function)),
        status=400 if _has_errors(form) else 200,
    )


@login_required
def function_delete(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name, write=True)
    error = None
    if request.method == "POST":
        try:
            services.function_delete(function=function, actor=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"Deleted {function.name}.")
            return redirect("functions:list", org_id=org_id)
    return render(
        request,
        "functions/delete.html",
        _frame(function, can_write, "overview", error=error, versions_count=function.versions.count()),
        status=400 if error else 200,
    )


@login_required
def function_history(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    page = Paginator(queries.function_history(function), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    entries = [{"entry": entry, "details": _change_rows(entry.changes)} for entry in page.object_list]
    return render(request, "functions/history.html", _frame(function, can_write, "history", page=page, entries=entries))


def _change_rows(changes: dict[str, Any]) -> list[dict[str, Any]]:
    """(label, before, after) for the History tab, from an entry's {"field": {"from", "to"}}; before is None
    when the field had no earlier value (creation)."""
    rows = []
    for field, change in (changes or {}).items():
        # "version" repeats the summary; other areas' entries may carry shapes of their own.
        if field == "version" or not isinstance(change, dict) or set(change) - {"from", "to"}:
            continue
        label = services.FIELD_LABELS.get(field, field.replace("_", " "))
        before = change.get("from")
        rows.append(
            (label, None if before is None else _change_text(field, before), _change_text(field, change.get("to")))
        )
    return rows


def _change_text(field: str, value: Any) -> str:
    if field == "timeout_seconds" and value is None:
        return "platform limit"
    if field == "tmp_mb":
        return "platform default" if value is None else f"{value} MB"
    if value is None:
        return "—"
    if field == "event_parameters" and isinstance(value, list):
        return ", ".join(f"{p.get('name')}={p.get('value')}" for p in value if isinstance(p, dict)) or "none"
    if field in ("deployed_version", "version"):
        return f"version {value}"
    if field == "timeout_seconds":
        return f"{value} seconds"
    if field == "imported_schedule" and isinstance(value, dict):
        entries = value.get("entries") or []
        return "; ".join(
            schedule_rules.describe(schedule_rules.Entry(tuple(e["daysOfWeek"]), e["timeSinceMidnightMs"]))
            for e in entries
        ) or "no entries"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value) if value != "" else "(empty)"


# --------------------------------------------------------------------------- code versions


def _version(function: Function, number: int) -> CodeVersion:
    return get_object_or_404(CodeVersion.objects.select_related("uploaded_by"), function=function, number=number)


@login_required
def version_upload(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name, write=True)
    organization = function.organization
    posted = request.method == "POST"
    form = UploadForm(request.POST if posted else None, request.FILES if posted else None, initial={"deploy": True})
    uploaded = request.FILES.get("bundle") if posted else None
    if posted and form.is_valid():
        data = form.cleaned_data
        staged = None
        try:
            if uploaded is None and data["staged_sha256"]:
                staged = services.staged_upload_open(organization=organization, sha256=data["staged_sha256"])
            version = services.code_version_upload(
                function=function, actor=request.user, bundle=uploaded or staged,
                message=data["message"], deploy=data["deploy"], handler=data["handler"] or None,
            )
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            if data["staged_sha256"]:
                services.staged_upload_delete(organization=organization, sha256=data["staged_sha256"])
            if data["deploy"]:
                messages.success(request, f"Uploaded version {version.number} and deployed it: the next run uses it.")
            else:
                messages.success(request, f"Uploaded version {version.number}. Deploy it from the list when ready.")
            return redirect("functions:detail", org_id=org_id, name=function.name)
        finally:
            if staged is not None:
                staged.close()
    if posted:
        _keep_sound_zip(form, organization, uploaded)
    return render(
        request, "functions/upload.html",
        _frame(function, can_write, "overview", form=form,
               staged_sha256=form.data.get("staged_sha256", "") if posted else "",
               staged_filename=form.data.get("staged_filename", "") if posted else ""),
        status=400 if form.errors else 200,
    )


@login_required
def version_browse(request: HttpRequest, org_id: int, name: str, number: int) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    version = _version(function, number)
    folder = "/".join(p for p in request.GET.get("dir", "").split("/") if p not in ("", ".", ".."))
    error = None
    folders, files = [], []
    try:
        folders, files = queries.folder_listing(services.code_version_files(version), folder)
    except (OSError, ValueError) as exc:
        error = f"The stored package of version {version.number} cannot be read ({exc.__class__.__name__})."
    if folder and not (folders or files) and error is None:
        raise Http404("No such folder in this version.")
    crumbs = []
    parts = folder.split("/") if folder else []
    for index, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: index + 1])))
    return render(
        request,
        "functions/version.html",
        _frame(function, can_write, "overview", version=version, folder=folder, folders=folders, files=files,
               crumbs=crumbs, error=error),
    )


@login_required
def version_file(request: HttpRequest, org_id: int, name: str, number: int, path: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    version = _version(function, number)
    try:
        result = services.code_version_read_file(version, path)
    except (OSError, ValueError):
        raise Http404("The stored package cannot be read.") from None
    if result is None:
        raise Http404("No such file in this version.")
    folder, _, file_name = result["path"].rpartition("/")
    return render(
        request,
        "functions/version_file.html",
        _frame(function, can_write, "overview", version=version, file=result, folder=folder, file_name=file_name,
               lines=result["text"].splitlines() if result["text"] is not None else [],
               limit=services.MAX_VIEW_BYTES),
    )


@login_required
def version_download(request: HttpRequest, org_id: int, name: str, number: int) -> FileResponse:
    function, can_write = function_for(request.user, org_id, name)
    version = _version(function, number)
    try:
        package = services.code_version_open(version)
    except OSError:
        raise Http404("The stored package cannot be read.") from None
    return FileResponse(
        package, as_attachment=True, filename=f"{function.name}-v{version.number}.zip", content_type="application/zip"
    )


@require_POST
@login_required
def version_deploy(request: HttpRequest, org_id: int, name: str, number: int) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name, write=True)
    version = _version(function, number)
    was = function.deployed_version.number if function.deployed_version else None
    try:
        services.code_version_deploy(function=function, version=version, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        if was == version.number:
            messages.info(request, f"Version {version.number} is already deployed.")
        else:
            messages.success(request, f"Version {version.number} is now deployed: the next run uses it.")
    return redirect("functions:detail", org_id=org_id, name=function.name)
