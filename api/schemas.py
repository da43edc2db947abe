"""Request and response shapes, named as Samsara's API names them (camelCase), for pydantic and the OpenAPI document.

Requests: wrong types are refused (strict), unknown fields are ignored, as
Samsara's own clients send fields this platform may not know.
"""

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    # A plain pydantic model, not ninja's Schema: Schema reads attributes off any
    # object, so a string given for an object would pass as an empty one.
    model_config = ConfigDict(strict=True, extra="ignore")


class Error(Schema):
    message: str
    requestId: str


# --- Functions ---


class ScheduleEntry(Strict):
    daysOfWeek: list[bool] = Field(description="7 booleans, index 0 = Sunday; at least one true.")
    timeSinceMidnightMs: int = Field(description="0 to 86399999.")


class ScheduleIn(Strict):
    entries: list[ScheduleEntry]
    timezone: str = Field(description="IANA time zone name, e.g. America/Chicago.")


class CreateConfig(Strict):
    handler: str = Field(description="path/to/module.function, e.g. main.handler")
    isScheduleEnabled: bool | None = None
    params: dict[str, str] | None = Field(default=None, description="Event parameters: name to value.")
    secrets: dict[str, str] | None = Field(default=None, description="Secrets: name to value (stored encrypted, never returned).")
    schedule: ScheduleIn | None = None


class FunctionCreateIn(Strict):
    name: str
    description: str | None = None
    config: CreateConfig


class PatchConfig(Strict):
    handler: str | None = None
    isScheduleEnabled: bool | None = None
    params: dict[str, str] | None = Field(default=None, description="Replaces every event parameter.")
    secrets: dict[str, str] | None = Field(
        default=None, description="Replaces the whole set; an empty value keeps an existing secret's value."
    )
    schedule: ScheduleIn | None = None


class FunctionPatchIn(Strict):
    lastUpdateTimestampMs: int = Field(description="The value GET returned; a stale one is refused with 409.")
    description: str | None = None
    config: PatchConfig | None = None


class ScheduleOut(Schema):
    entries: list[dict]
    timezone: str


class ConfigOut(Schema):
    handler: str
    isScheduleEnabled: bool
    params: dict[str, str]
    secrets: dict[str, str] = Field(description="Secret names; values are always empty.")
    schedule: ScheduleOut | None = None


class CodePackageOut(Schema):
    status: Literal["unknown", "pendingUpload", "uploaded", "deployed"]
    downloadGetUrl: str | None = None


class EffectsOut(Schema):
    nextScheduledAtTime: datetime | None = None


class FunctionOut(Schema):
    name: str
    description: str | None = None
    config: ConfigOut
    codePackage: CodePackageOut
    effects: EffectsOut
    createdAtTime: datetime
    updatedAtTime: datetime
    lastUpdateTimestampMs: int


class FunctionCreatedOut(FunctionOut):
    uploadPutUrl: str


class FunctionEnvelope(Schema):
    data: FunctionOut


class FunctionCreatedEnvelope(Schema):
    data: FunctionCreatedOut


class PatchedOut(Schema):
    name: str
    lastUpdateTimestampMs: int
    updatedAtTime: datetime
    uploadPutUrl: str


class PatchedEnvelope(Schema):
    data: PatchedOut


class DeployedOut(Schema):
    name: str
    version: int = Field(description="The code version now deployed (beyond Samsara's API).")


class DeployedEnvelope(Schema):
    data: DeployedOut


class Pagination(Schema):
    endCursor: str
    hasNextPage: bool


class FunctionSummary(Schema):
    name: str
    description: str | None = None
    handler: str
    codePackageStatus: Literal["unknown", "pendingUpload", "uploaded", "deployed"]
    createdAtTime: datetime
    updatedAtTime: datetime
    lastUpdateTimestampMs: int


class FunctionList(Schema):
    data: list[FunctionSummary]
    pagination: Pagination


# --- runs ---


class RunStartIn(Strict):
    paramsOverride: dict[str, str] = Field(description="Per-run overrides of the event; may be empty.")


class RunStarted(Schema):
    correlationId: str


class RunStartedEnvelope(Schema):
    data: RunStarted


class RunContext(Schema):
    requestId: str
    requestPayload: dict | None = Field(default=None, description="The event the handler received.")
    responsePayload: dict | None = Field(default=None, description="The return value, when it is a JSON object.")


class RunOut(Schema):
    correlationId: str
    name: str
    status: Literal["started", "success", "error", "timeout", "dropped"]
    startedAtTime: datetime
    completedAtTime: datetime | None = None
    context: RunContext
    trigger: str | None = Field(default=None, description="manual, api, schedule or alert (beyond Samsara's API).")


class RunEnvelope(Schema):
    data: RunOut


class RunList(Schema):
    data: list[RunOut]
    pagination: Pagination


# --- logs ---


class LogEntryOut(Schema):
    log: str
    loggedAtTime: datetime
    correlationId: str | None = None
    stream: str | None = None


class LogList(Schema):
    data: list[LogEntryOut]
    pagination: Pagination


# --- storage ---


class SignedUrl(Schema):
    url: str
    expiresAtTime: datetime


class SignedUrlOfType(SignedUrl):
    urlType: Literal["download", "upload"]


class StorageFile(Schema):
    name: str
    sizeBytes: int
    modifiedAtTime: datetime
    urls: list[SignedUrlOfType] | None = None


class StorageFolder(Schema):
    name: str


class StorageList(Schema):
    data: list[StorageFile]
    folders: list[StorageFolder] | None = None
    pagination: Pagination


class StorageFileIn(Strict):
    name: str


class StorageDownload(Schema):
    name: str
    downloadGet: SignedUrl


class StorageDownloadEnvelope(Schema):
    data: StorageDownload


class StorageUpload(Schema):
    name: str
    uploadPut: SignedUrl


class StorageUploadEnvelope(Schema):
    data: StorageUpload
