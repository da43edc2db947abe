"""The organization's storage: the one API that the Storage tab and the in-run S3 endpoint share.

Bytes live in Django's storage API under `orgfiles/<org_id>/<uuid>` (local disk
by default, S3 through django-storages); metadata lives in StoredObject rows,
so listing never walks a disk or a bucket. Code packages use `packages/` in the
same storage, never this prefix.

A write is atomic: the new bytes go to a new blob, one transaction points the
row at it, and the old blob is removed after commit. A write that fails or is
interrupted half-way removes its own blob and leaves the row (and so the
previous version) untouched.

Keys are compared byte by byte (UTF-8), as S3 does; `object_list` speaks S3's
ListObjectsV2 (prefix, delimiter, start-after, max keys, truncation).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mimetypes
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import Organization

from .errors import (  # noqa: F401 - re-exported: callers catch them from here
    StorageError,
    AlreadyExists,
    IncompleteBody,
    InvalidKey,
    InvalidRange,
    KeyClash,
    ObjectNotFound,
    ObjectTooLarge,
    QuotaExceeded,
)
from .models import StoredObject, WriterKind, key_successor
from .sizes import format_bytes

if TYPE_CHECKING:  # the writers, named in annotations only: storage does not depend on them
    from accounts.models import User
    from functions.models import Function

logger = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
BLOB_PREFIX = "orgfiles"
CHUNK_SIZE = 1024 * 1024
# ListObjectsV2 returns at most this many entries per call.
LIST_MAX_KEYS = 1000
PREVIEW_MAX_BYTES = 256 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;[ -~]*)?$")
_TEXT_EXTENSIONS = {
    ".txt", ".json", ".csv", ".tsv", ".log", ".md", ".yaml", ".yml", ".xml", ".ini", ".toml", ".cfg", ".conf",
    ".py", ".sql", ".html", ".htm", ".js", ".css", ".ndjson", ".jsonl",
}
_TEXT_TYPES = {"application/json", "application/xml", "application/x-ndjson", "application/yaml", "application/toml"}


# --- limits ---


def quota_bytes(*, organization: Organization) -> int:
    """The organization's storage quota (FUNCTIONS_STORAGE_QUOTA_BYTES, 5 GB by default)."""
    return settings.FUNCTIONS_STORAGE_QUOTA_BYTES


def max_object_bytes() -> int:
    """The largest single object (S3's PutObject limit: 5 GB)."""
    return settings.FUNCTIONS_STORAGE_MAX_OBJECT_BYTES


def usage_bytes(*, organization: Organization) -> int:
    return StoredObject.objects.of(organization).aggregate(total=Sum("size"))["total"] or 0


# --- keys ---


def shown(key: str, limit: int = 80) -> str:
    """A key as a message may quote it: control characters made visible, long keys shortened."""
    text = "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in key)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_key(key: Any) -> str:
    """The key if it may name an object; InvalidKey with the reason otherwise."""
    if not isinstance(key, str):
        raise InvalidKey("A file name must be text.")
    if key == "":
        raise InvalidKey("A file name cannot be empty.")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"“{shown(key)}” is not valid UTF-8 text.") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(
            f"“{shown(key)}” is {len(encoded):,} bytes long; a file's full name (folders included) "
            f"is at most {MAX_KEY_BYTES:,} bytes of UTF-8."
        )
    if key.startswith("/"):
        raise InvalidKey(f"“{shown(key)}” starts with “/”: names are relative to the top folder, drop the leading slash.")
    if "\\" in key:
        raise InvalidKey(f"“{shown(key)}” contains a backslash (\\); folders are separated by “/”.")
    control = next((c for c in key if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise InvalidKey(f"“{shown(key)}” contains a control character (U+{ord(control):04X}); names must be printable.")
    if ".." in key.split("/"):
        raise InvalidKey(f"“{shown(key)}” has a “..” segment; a name cannot point to a parent folder.")
    return key


def validate_folder(prefix: Any) -> str:
    """A folder prefix: "" (the top) or a valid key ending in `/`."""
    if prefix == "":
        return prefix
    validate_key(prefix)
    if not prefix.endswith("/"):
        raise InvalidKey(f"“{shown(prefix)}” is not a folder: a folder's name ends with “/”.")
    return prefix


def validate_name(name: Any) -> str:
    """One file or folder name typed by a person, before the current folder is put in front of it."""
    if not isinstance(name, str) or name.strip() == "":
        raise InvalidKey("A name cannot be empty.")
    return name


def _clean_content_type(content_type: str | None, key: str) -> str:
    content_type = (content_type or "").strip()
    if content_type and len(content_type) <= 255 and _CONTENT_TYPE_RE.match(content_type):
        return content_type
    guessed, _ = mimetypes.guess_type(key.rsplit("/", 1)[-1])
    return guessed or DEFAULT_CONTENT_TYPE


def _clash(organization: Organization, key: str) -> KeyClash | None:
    """A KeyClash if storing `key` would put a file where a folder is, or a folder where a file is."""
    objects = StoredObject.objects.of(organization)
    parts = key.split("/")
    # "a/b/c" (or the folder "a/b/") needs neither "a" nor "a/b" to be a file.
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    ancestors = [a for a in ancestors if a and not a.endswith("/")]
    if ancestors:
        file_key = objects.filter(key__in=ancestors).values_list("key", flat=True).first()
        if file_key is not None:
            return KeyClash(
                f"“{shown(file_key)}” is a file, so it cannot also be a folder holding “{shown(key)}”. "
                "Delete or rename that file first."
            )
    if not key.endswith("/") and objects.in_prefix(key + "/").exists():
        return KeyClash(
            f"There is already a folder named “{shown(key)}/”; a file cannot have the same name as a folder. "
            "Rename the file or delete the folder first."
        )
    return None


def _writer(
    organization: Organization,
    writer_user: User | None,
    writer_function: Function | None,
    writer_label: str,
) -> tuple[str, str]:
    if writer_function is not None:
        if writer_function.organization_id != organization.id:
            raise ValueError("The writing Function belongs to another organization.")
        return WriterKind.FUNCTION, writer_function.name
    if writer_user is not None:
        return WriterKind.USER, writer_user.email
    return WriterKind.OTHER, (writer_label or "")[:254]


def _quota_refusal(
    organization: Organization,
    *,
    incoming: int,
    replaced: int,
    usage: int | None = None,
) -> QuotaExceeded | None:
    quota = quota_bytes(organization=organization)
    usage = usage_bytes(organization=organization) if usage is None else usage
    after = usage - replaced + incoming
    if after <= quota:
        return None
    free = max(quota - usage + replaced, 0)
    return QuotaExceeded(
        f"Storing {format_bytes(incoming)} would take the organization's storage to {format_bytes(after)}, "
        f"over its quota of {format_bytes(quota)} ({format_bytes(free)} free). Nothing was stored; "
        "delete files to make room."
    )


def quota_check(*, organization: Organization, key: str, size: int) -> None:
    """Refuse (QuotaExceeded) storing `size` bytes at `key` when that would take the organization over its quota.

    Replacing a file gives its bytes back first. For callers that know an
    upload's size before reading it (the in-run S3 endpoint); object_put
    applies the same rule again as it stores.
    """
    replaced = StoredObject.objects.of(organization).filter(key=key).values_list("size", flat=True).first() or 0
    if refusal := _quota_refusal(organization, incoming=size, replaced=replaced):
        raise refusal


def _too_large(key: str, size: int) -> ObjectTooLarge:
    return ObjectTooLarge(
        f"“{shown(key)}” is {format_bytes(size)}; one file is at most {format_bytes(max_object_bytes())}. "
        "Nothing was stored."
    )


# --- blobs ---


def _new_blob_name(organization: Organization) -> str:
    return f"{BLOB_PREFIX}/{organization.id}/{uuid.uuid4().hex}"


def discard_blob(name: str) -> None:
    """Remove a blob, logging rather than failing: a leftover blob wastes space, a failed request loses work."""
    try:
        default_storage.delete(name)
    except Exception:  # noqa: BLE001 - any backend error; the row is already right
        logger.exception("Could not delete the storage blob %s; it is orphaned.", name)


class _MeteredReader:
    """Feeds a source to the storage backend while hashing, counting and enforcing the limits.

    Raising from read() aborts the backend's write part-way; object_put then
    deletes whatever part was written.
    """

    def __init__(
        self,
        source: BinaryIO,
        *,
        key: str,
        expected: int | None,
        max_bytes: int,
        room: int,
        content_type: str,
        on_room_exceeded: Callable[[int], StorageError | None],
    ) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        self.max_bytes = max_bytes
        self.room = room
        self.content_type = content_type  # S3Storage reads it for the blob's ContentType
        self.on_room_exceeded = on_room_exceeded
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.name = key

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        data = self.source.read(size)
        if data is None:
            data = b""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("Storage objects are bytes; open the source in binary mode.")
        data = bytes(data)
        self.size += len(data)
        if self.size > self.max_bytes:
            raise _too_large(self.key, self.size)
        if self.expected is not None and self.size > self.expected:
            raise IncompleteBody(
                f"More bytes arrived for “{shown(self.key)}” than the announced {self.expected:,}; nothing was stored."
            )
        if self.size > self.room:
            raise self.on_room_exceeded(self.size)
        if not data and self.expected is not None and self.size < self.expected:
            raise IncompleteBody(
                f"The upload of “{shown(self.key)}” ended after {self.size:,} of {self.expected:,} bytes; "
                "nothing was stored and any previous version is unchanged."
            )
        if data:
            self.md5.update(data)
        return data

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while True:
            data = self.read(chunk_size or CHUNK_SIZE)
            if not data:
                return
            yield data

    # Enough of io.RawIOBase for django-storages and s3transfer, which treat
    # a non-seekable source as a stream and read it once, in parts.
    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        # The caller owns the source.
        pass


class _RangeReader:
    """At most `length` bytes of an open blob; closing it closes the blob."""

    def __init__(self, handle: BinaryIO, length: int) -> None:
        self.handle = handle
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self.handle.read(size)
        self.remaining -= len(data)
        return data

    def __iter__(self) -> Iterator[Any]:
        return iter(lambda: self.read(CHUNK_SIZE), b"")

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _s3_storage() -> Any:
    """default_storage when it is django-storages' S3 backend, else None."""
    from storages.backends.s3 import S3Storage  # here: it imports boto3, which only S3 deployments need

    return default_storage if isinstance(default_storage, S3Storage) else None


def _open_blob(name: str, first: int, last: int, ranged: bool) -> BinaryIO:
    s3 = _s3_storage()
    if s3 is not None:
        # S3Storage.open() would download the whole object to a temporary file
        # before the first byte; a ranged GET streams just the bytes asked for.
        from storages.utils import clean_name

        params = {"Range": f"bytes={first}-{last}"} if ranged else {}
        return s3.bucket.Object(s3._normalize_name(clean_name(name))).get(**params)["Body"]
    handle = default_storage.open(name, "rb")
    if first:
        handle.seek(first)
    return handle


def blob_sweep(*, older_than: timedelta | None = None) -> list[str]:
    """Delete blobs under orgfiles/ that no object points to; the names deleted.

    A write killed between storing its bytes and committing its row (a worker
    killed by its time limit, a machine that lost power) leaves such a blob;
    everything else cleans up after itself. Only blobs older than
    `older_than` (default one hour) go, so a write still in progress keeps its
    bytes.
    """
    older_than = timedelta(hours=1) if older_than is None else older_than
    cutoff = timezone.now() - older_than
    swept = []
    folders, _ = default_storage.listdir(BLOB_PREFIX) if default_storage.exists(BLOB_PREFIX) else ([], [])
    for folder in folders:
        base = f"{BLOB_PREFIX}/{folder}"
        _, names = default_storage.listdir(base)
        for start in range(0, len(names), 500):
            batch = [f"{base}/{name}" for name in names[start:start + 500]]
            known = set(StoredObject.objects.filter(blob_name__in=batch).values_list("blob_name", flat=True))
            for blob in batch:
                if blob not in known and default_storage.get_modified_time(blob) < cutoff:
                    discard_blob(blob)
                    swept.append(blob)
    return swept


# --- objects ---


def object_put(
    *,
    organization: Organization,
    key: str,
    fileobj_or_bytes: bytes | BinaryIO,
    content_type: str = "",
    size: int | None = None,
    writer_user: User | None = None,
    writer_function: Function | None = None,
    writer_label: str = "",
    check_clash: bool = True,
    run_query: Callable[[Callable[[], Any]], Any] | None = None,
) -> StoredObject:
    """Store (create or replace) one object, atomically; the new StoredObject.

    `fileobj_or_bytes` is bytes or a binary file-like object read in chunks.
    `size` is the announced length (Content-Length); for uploaded files and
    bytes it is known already. With a known size, quota and size limits are
    checked before any byte is stored; they are checked again while streaming
    and once more inside the transaction that makes the object visible, so
    concurrent writers cannot overshoot the quota together.

    `check_clash=False` lets a file `a` and a folder `a/` coexist, as plain S3
    allows; the Storage tab refuses that clash.

    `run_query(work)` runs the database steps (the checks before, the commit
    after) where the caller needs them, while the bytes stream into storage in
    the calling thread: a run's in-run endpoint hands them to the attempt's
    database thread, which must not wait out a large upload.
    """
    run_query = run_query or (lambda work: work())
    key = validate_key(key)
    if isinstance(fileobj_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(fileobj_or_bytes)
        if size is not None and size != len(data):
            raise IncompleteBody(f"“{shown(key)}” has {len(data):,} bytes, not the announced {size:,}.")
        size = len(data)
        source = io.BytesIO(data)
    else:
        source = fileobj_or_bytes
        if size is None:
            size = getattr(source, "size", None)
    content_type = _clean_content_type(content_type, key)
    writer_kind, label = _writer(organization, writer_user, writer_function, writer_label)

    limit = max_object_bytes()
    if size is not None and size > limit:
        raise _too_large(key, size)

    def check() -> tuple[int, int, int]:
        if check_clash and (clash := _clash(organization, key)):
            raise clash
        existing = StoredObject.objects.of(organization).filter(key=key).values_list("size", flat=True).first() or 0
        used = usage_bytes(organization=organization)
        if size is not None and (refusal := _quota_refusal(organization, incoming=size, replaced=existing, usage=used)):
            raise refusal
        return existing, used, quota_bytes(organization=organization) - used + existing

    existing_size, usage, room = run_query(check)

    reader = _MeteredReader(
        source,
        key=key,
        expected=size,
        max_bytes=limit,
        room=room,
        content_type=content_type,
        on_room_exceeded=lambda seen: _quota_refusal(
            organization, incoming=seen, replaced=existing_size, usage=usage
        ),
    )
    blob_name = _new_blob_name(organization)
    try:
        blob_name = default_storage.save(blob_name, reader)
    except BaseException:
        # Whatever part was written is not an object: take it away.
        discard_blob(blob_name)
        raise

    try:
        stored = run_query(lambda: _object_commit(
            organization=organization,
            key=key,
            blob_name=blob_name,
            size=reader.size,
            etag=reader.md5.hexdigest(),
            content_type=content_type,
            writer_user=writer_user,
            writer_function=writer_function,
            writer_kind=writer_kind,
            writer_label=label,
            check_clash=check_clash,
        ))
    except BaseException:
        discard_blob(blob_name)
        raise
    return stored


def _object_commit(
    *,
    organization: Organization,
    key: str,
    blob_name: str,
    size: int | None,
    etag: str,
    content_type: str,
    writer_user: User | None,
    writer_function: Function | None,
    writer_kind: str,
    writer_label: str,
    check_clash: bool,
) -> StoredObject:
    """Point the key at its new blob in one transaction; the old blob goes after commit."""
    with transaction.atomic():
        # One writer per organization at a time from here to commit, so the
        # quota and clash checks below see every other committed write.
        Organization.objects.select_for_update().filter(pk=organization.pk).values_list("pk").first()
        stored = StoredObject.objects.select_for_update().filter(organization=organization, key=key).first()
        if check_clash and (clash := _clash(organization, key)):
            raise clash
        if refusal := _quota_refusal(organization, incoming=size, replaced=stored.size if stored else 0):
            raise refusal
        old_blob = stored.blob_name if stored else None
        if stored is None:
            stored = StoredObject(organization=organization, key=key)
        stored.blob_name = blob_name
        stored.size = size
        stored.etag = etag
        stored.content_type = content_type
        stored.last_modified = timezone.now()
        stored.written_by_user = writer_user
        stored.written_by_function = writer_function
        stored.writer_kind = writer_kind
        stored.writer_label = writer_label
        stored.save()
        if old_blob and old_blob != blob_name:
            transaction.on_commit(lambda: discard_blob(old_blob))
    return stored


def object_get(*, organization: Organization, key: str) -> StoredObject:
    """The organization's object named `key`; ObjectNotFound if there is none."""
    if isinstance(key, str) and key:
        stored = StoredObject.objects.of(organization).filter(key=key).first()
        if stored is not None:
            return stored
    raise ObjectNotFound(f"There is no file named “{shown(str(key))}”.")


def object_open(obj: StoredObject, start: int | None = None, end: int | None = None) -> _RangeReader:
    """A binary reader of the object's bytes, or of bytes start..end inclusive (HTTP Range style).

    The caller resolves suffix ranges ("bytes=-500") into start/end. A start
    at or past the end of a non-empty object raises InvalidRange. Close the
    reader when done (FileResponse does).
    """
    ranged = start is not None or end is not None
    first = 0 if start is None else start
    last = obj.size - 1 if end is None or end >= obj.size else end
    if ranged and (first < 0 or first >= obj.size or last < first):
        raise InvalidRange(f"The range {start}-{'' if end is None else end} is outside “{shown(obj.key)}” ({obj.size:,} bytes).")
    length = last - first + 1
    if length <= 0:
        return _RangeReader(io.BytesIO(b""), 0)
    partial = ranged and (first > 0 or last < obj.size - 1)
    return _RangeReader(_open_blob(obj.blob_name, first, last, partial), length)


def object_delete(*, organization: Organization, key: str) -> bool:
    """Delete one object; True if it existed. Its blob goes after commit (see signals)."""
    with transaction.atomic():
        deleted, _ = StoredObject.objects.of(organization).filter(key=key).delete()
    return deleted > 0


def object_copy(
    *,
    organization: Organization,
    source_key: str,
    destination_key: str,
    content_type: str | None = None,
    writer_user: User | None = None,
    writer_function: Function | None = None,
    writer_label: str = "",
    check_clash: bool = True,
) -> StoredObject:
    """Copy an object to another key of the same organization (S3 CopyObject); the new object.

    The content type is copied unless one is given. Copying onto itself
    rewrites the object (new blob, new last-modified), as S3 does.
    """
    source = object_get(organization=organization, key=source_key)
    with object_open(source) as reader:
        return object_put(
            organization=organization,
            key=destination_key,
            fileobj_or_bytes=reader,
            size=source.size,
            content_type=source.content_type if content_type is None else content_type,
            writer_user=writer_user,
            writer_function=writer_function,
            writer_label=writer_label,
            check_clash=check_clash,
        )


class Listing(NamedTuple):
    """One page of ListObjectsV2: objects and common prefixes, both in key order."""

    objects: list
    common_prefixes: list
    is_truncated: bool

    @property
    def next_after(self) -> str | None:
        """The cursor for the next page: pass it back as `start_after` with the same prefix and delimiter."""
        last_object = self.objects[-1].key if self.objects else None
        last_prefix = self.common_prefixes[-1] if self.common_prefixes else None
        candidates = [c for c in (last_object, last_prefix) if c is not None]
        return max(candidates) if candidates else None


def object_list(
    *,
    organization: Organization,
    prefix: str = "",
    delimiter: str | None = None,
    start_after: str | None = None,
    limit: int = LIST_MAX_KEYS,
) -> Listing:
    """Objects whose key starts with `prefix`, after `start_after`, in byte order: a Listing.

    With a delimiter, keys holding it after the prefix roll up into one common
    prefix each (S3's folders); a group is skipped in one range jump, so a
    folder with a million files costs one query, not a million rows. At most
    `limit` entries (objects plus prefixes); `is_truncated` says more follow,
    from `next_after`. A `start_after` equal to a common prefix resumes after
    the whole group.
    """
    limit = max(int(limit), 0)
    if limit == 0:
        return Listing([], [], False)
    base = StoredObject.objects.of(organization).in_prefix(prefix).order_by("key")
    lower, inclusive = None, False
    if start_after:
        lower = start_after
        if delimiter and start_after.startswith(prefix):
            rest = start_after[len(prefix):]
            cut = rest.find(delimiter)
            if cut >= 0 and start_after == prefix + rest[: cut + len(delimiter)]:
                lower, inclusive = key_successor(start_after), True
                if lower is None:
                    return Listing([], [], False)

    objects, prefixes = [], []
    batch_size = min(limit + 1, LIST_MAX_KEYS + 1)
    while True:
        queryset = base
        if lower is not None:
            queryset = queryset.filter(key__gte=lower) if inclusive else queryset.filter(key__gt=lower)
        batch = list(queryset[:batch_size])
        open_group = None
        for row in batch:
            if delimiter:
                rest = row.key[len(prefix):]
                cut = rest.find(delimiter)
                if cut >= 0:
                    group = prefix + rest[: cut + len(delimiter)]
                    if group == open_group:
                        continue
                    if len(objects) + len(prefixes) == limit:
                        return Listing(objects, prefixes, True)
                    prefixes.append(group)
                    open_group = group
                    continue
            if len(objects) + len(prefixes) == limit:
                return Listing(objects, prefixes, True)
            objects.append(row)
            open_group = None
        if len(batch) < batch_size:
            return Listing(objects, prefixes, False)
        if open_group is not None:
            # The batch ended inside a folder: jump past all of it at once.
            lower, inclusive = key_successor(open_group), True
            if lower is None:
                return Listing(objects, prefixes, False)
        else:
            lower, inclusive = batch[-1].key, False


def subfolder_list(
    *,
    organization: Organization,
    folder: str,
    name_prefix: str = "",
    limit: int = 100,
) -> tuple[list[str], bool]:
    """([subfolder prefixes], more) directly below `folder` whose names start with `name_prefix`, by name.

    Skips over files with one range jump per subfolder; for pages sorted by
    size or date, whose files come from folder_files_sorted.
    """
    folder = validate_folder(folder)
    found, lower = [], folder + name_prefix
    queryset = (
        StoredObject.objects.of(organization).in_prefix(folder + name_prefix).exclude(folder=folder).order_by("key")
    )
    while True:
        key = queryset.filter(key__gte=lower).values_list("key", flat=True).first()
        if key is None:
            return found, False
        rest = key[len(folder):]
        group = folder + rest[: rest.find("/") + 1]
        if len(found) == limit:
            return found, True
        found.append(group)
        lower = key_successor(group)
        if lower is None:
            return found, False


SORT_FIELDS = {"size": "size", "modified": "last_modified"}


def folder_files_sorted(
    *,
    organization: Organization,
    folder: str,
    name_prefix: str = "",
    sort: str = "size",
    descending: bool = True,
    after: Any = None,
    limit: int = 100,
) -> tuple[list[StoredObject], bool]:
    """(files, more): the files directly in `folder`, sorted by size or last-modified, a page at a time.

    Keyset pagination: `after` is (value, key) of the previous page's last
    file, and the key breaks ties, so a page never repeats or skips a file
    even when files are added or removed between pages (an offset would).
    """
    field = SORT_FIELDS[sort]
    queryset = StoredObject.objects.of(organization).files_in(folder).in_prefix(folder + name_prefix)
    if after is not None:
        value, key = after
        if descending:
            queryset = queryset.filter(Q(**{f"{field}__lt": value}) | Q(**{field: value, "key__lt": key}))
        else:
            queryset = queryset.filter(Q(**{f"{field}__gt": value}) | Q(**{field: value, "key__gt": key}))
    ordering = [f"-{field}", "-key"] if descending else [field, "key"]
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    return rows[:limit], len(rows) > limit


def folder_summary(*, organization: Organization, prefix: str) -> tuple[int, int]:
    """(files, bytes) under a folder, subfolders included, folder markers not counted as files."""
    totals = (
        StoredObject.objects.of(organization).in_prefix(prefix).not_markers()
        .aggregate(files=Count("pk"), total=Sum("size"))
    )
    return totals["files"], totals["total"] or 0


def folder_exists(*, organization: Organization, prefix: str) -> bool:
    return StoredObject.objects.of(organization).in_prefix(prefix).exists()


def folder_create(
    *,
    organization: Organization,
    prefix: str,
    writer_user: User | None = None,
    writer_function: Function | None = None,
    writer_label: str = "",
) -> StoredObject:
    """Create an empty folder: a zero-byte `prefix/` marker object, as the S3 console does."""
    prefix = validate_folder(prefix)
    if prefix == "":
        raise InvalidKey("The top folder always exists.")
    if folder_exists(organization=organization, prefix=prefix):
        raise AlreadyExists(f"There is already a folder named “{shown(prefix)}”.")
    return object_put(
        organization=organization,
        key=prefix,
        fileobj_or_bytes=b"",
        content_type="application/x-directory",
        writer_user=writer_user,
        writer_function=writer_function,
        writer_label=writer_label,
    )


def folder_delete(*, organization: Organization, prefix: str) -> int:
    """Delete a folder and everything under it; the number of files deleted (markers not counted)."""
    prefix = validate_folder(prefix)
    if prefix == "":
        raise InvalidKey("Choose a folder to delete; the top folder cannot be deleted.")
    deleted_files = 0
    objects = StoredObject.objects.of(organization).in_prefix(prefix)
    while True:
        # Batches keep each transaction (and the blobs queued for deletion) small.
        with transaction.atomic():
            batch = list(objects.order_by("key").values_list("pk", "key")[:500])
            if not batch:
                return deleted_files
            StoredObject.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
            deleted_files += sum(1 for _, key in batch if not key.endswith("/"))


# --- uploads from the Storage tab ---


class UploadPlan(NamedTuple):
    existing: list  # keys that an upload would replace


def upload_plan(*, organization: Organization, items: Iterable[tuple[str, int]]) -> UploadPlan:
    """Check a batch of (key, size) before any byte is stored; the keys it would replace.

    Raises the first refusal: an invalid or repeated key, a file over the size
    limit, a file/folder clash, or the batch taking the organization over its
    quota (replaced files' sizes are given back).
    """
    keys = []
    for key, size in items:
        validate_key(key)
        if key in keys:
            raise InvalidKey(f"Two of the files are named “{shown(key)}”; upload them one at a time.")
        if key.endswith("/"):
            raise InvalidKey(f"“{shown(key)}” ends with “/”, which names a folder, not a file.")
        if size > max_object_bytes():
            raise _too_large(key, size)
        if clash := _clash(organization, key):
            raise clash
        keys.append(key)
    existing = dict(StoredObject.objects.of(organization).filter(key__in=keys).values_list("key", "size"))
    refusal = _quota_refusal(
        organization, incoming=sum(size for _, size in items), replaced=sum(existing.values())
    )
    if refusal:
        raise refusal
    return UploadPlan(existing=sorted(existing))


# --- previews ---


class Preview(NamedTuple):
    text: str
    is_json: bool
    note: str


def is_previewable(obj: StoredObject) -> bool:
    """Small enough and of a text type (by content type or extension) to show inline."""
    if obj.is_folder_marker or obj.size > PREVIEW_MAX_BYTES:
        return False
    content_type = obj.content_type.split(";")[0].strip().lower()
    extension = "." + obj.key.rsplit(".", 1)[-1].lower() if "." in obj.name else ""
    return (
        content_type.startswith("text/")
        or content_type in _TEXT_TYPES
        or content_type.endswith("+json")
        or extension in _TEXT_EXTENSIONS
    )


def object_preview(obj: StoredObject) -> Preview | None:
    """The object's text for an inline preview (JSON pretty-printed); None if it is not text."""
    if not is_previewable(obj):
        return None
    with object_open(obj) as reader:
        data = reader.read(PREVIEW_MAX_BYTES + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    content_type = obj.content_type.split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json") or obj.key.lower().endswith(".json"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return Preview(text, False, "This file is not valid JSON; shown as text.")
        return Preview(json.dumps(parsed, indent=2, ensure_ascii=False), True, "")
    return Preview(text, False, "")
