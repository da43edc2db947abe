"""S3 over REST/XML, path-style, on the organization's one bucket.

Objects are read through ``endpoint.backend`` (objects with ``key``, ``size``,
``etag`` (hex MD5), ``content_type`` and ``last_modified``).

Buckets and what is said about them: the attempt's own bucket is served; any
other name of this platform's form (``samsara-functions-storage-<digits>``) is
AccessDenied whether or not that organization exists, and any other name is
NoSuchBucket (no bucket of another form exists here). So nothing tells a
Function which organizations exist.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from .errors import AwsError
from .messages import Response

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
PLATFORM_BUCKET_RE = re.compile(r"^samsara-functions-storage-\d+$")
MAX_KEY_BYTES = 1024
LIST_MAX_KEYS = 1000
TOKEN_PREFIX = "v1:"
MIN_PART_BYTES = 5 * 1024 * 1024      # every part but the last, as S3 requires
MAX_PART_NUMBER = 10000
MAX_UPLOADS = 100                     # open multipart uploads per attempt
UNSUPPORTED_SUBRESOURCES = (
    "acl", "tagging", "versioning", "policy", "cors", "lifecycle", "versions",
    "website", "logging", "notification", "encryption", "replication", "object-lock", "retention", "legal-hold",
    "torrent", "restore", "select", "attributes", "accelerate", "requestPayment", "ownershipControls",
    "publicAccessBlock", "analytics", "metrics", "inventory", "intelligent-tiering", "policyStatus", "session",
)


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(timezone.utc).replace(microsecond=0), usegmt=True)


def _etag(obj) -> str:
    return f'"{obj.etag}"'


def _headers(request, extra=None) -> dict:
    headers = {"x-amz-request-id": request.request_id, "x-amz-id-2": request.request_id}
    headers.update(extra or {})
    return headers


def _response(status, request, extra=None, body=b"", **kw):
    return Response(status, _headers(request, extra), body, **kw)


def _caller(endpoint, credential) -> str:
    if credential.kind == "role":
        return endpoint.identity.session_arn(credential.session_name)
    return endpoint.identity.base_arn


def _access_denied(endpoint, request, action: str, resource: str) -> AwsError:
    return AwsError("AccessDenied", f"User: {_caller(endpoint, request.credential)} is not authorized to perform: "
                                    f"s3:{action} on resource: \"arn:aws:s3:::{resource[:300]}\" because no "
                                    "identity-based policy allows the action", 403)


def check_bucket(endpoint, request, bucket: str, action: str) -> None:
    """AccessDenied or NoSuchBucket unless ``bucket`` is the attempt's own and the credential is the role's."""
    if bucket != endpoint.identity.bucket:
        if PLATFORM_BUCKET_RE.match(bucket):
            raise _access_denied(endpoint, request, action, bucket)
        raise AwsError("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket[:255])
    if request.credential.kind != "role":
        raise _access_denied(endpoint, request, action, bucket)


def _split_path(raw_path: str) -> tuple[str, str]:
    path = raw_path[1:] if raw_path.startswith("/") else raw_path
    bucket, _, key = path.partition("/")
    try:
        return unquote(bucket, errors="strict"), unquote(key, errors="strict")
    except UnicodeDecodeError:
        raise AwsError("InvalidURI", "Couldn't parse the specified URI: the key is not UTF-8.") from None


def _check_key(endpoint, key: str) -> str:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise AwsError("KeyTooLongError", "Your key is too long", 400, MaxSizeAllowed=MAX_KEY_BYTES)
    endpoint.backend.validate_key(key)
    return key


def handle(endpoint, request):
    bucket, key = _split_path(request.raw_path)
    params = request.params
    unsupported = next((name for name in UNSUPPORTED_SUBRESOURCES if name in params), None)
    method = request.method
    if not bucket:
        if method == "GET":
            raise _access_denied(endpoint, request, "ListAllMyBuckets", "*")
        raise AwsError("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
    action = {"GET": "GetObject" if key else "ListBucket", "HEAD": "GetObject" if key else "ListBucket",
              "PUT": "PutObject", "DELETE": "DeleteObject", "POST": "PutObject"}.get(method, "GetObject")
    check_bucket(endpoint, request, bucket, action)
    if unsupported:
        raise AwsError("NotImplemented", f"This platform's S3 endpoint does not implement the '{unsupported}' "
                                         "operations; it offers PutObject, GetObject, HeadObject, DeleteObject, "
                                         "DeleteObjects, CopyObject, ListObjects(V2) and multipart uploads.", 501)
    if "uploads" in params or "uploadId" in params:
        return _multipart(endpoint, request, bucket, key)
    if not key and method == "POST" and "delete" in params:
        return _delete_many(endpoint, request)
    if not key:
        if method == "GET" and "location" in params:
            region = endpoint.identity.region
            return _response(200, request, {"Content-Type": "application/xml"},
                             _xml(f'<LocationConstraint xmlns="{NS}">{region}</LocationConstraint>'))
        if method == "GET":
            return _list(endpoint, request, bucket, v2=params.get("list-type") == "2")
        if method == "HEAD":
            return _response(200, request, {"x-amz-bucket-region": endpoint.identity.region})
        raise _access_denied(endpoint, request, {"PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, "*"),
                             bucket)
    if "versionId" in params and params["versionId"] != "null":
        raise AwsError("NoSuchVersion", "The specified version does not exist.", 404, Key=key,
                       VersionId=params["versionId"][:100])
    _check_key(endpoint, key)
    if method in ("GET", "HEAD"):
        return _get(endpoint, request, key, head=method == "HEAD")
    if method == "PUT":
        if request.headers.get("x-amz-copy-source"):
            return _copy(endpoint, request, key)
        return _put(endpoint, request, key)
    if method == "DELETE":
        endpoint.backend.delete(key)
        return _response(204, request)
    raise AwsError("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)


# --- objects -------------------------------------------------------------------------


def _object_headers(obj) -> dict:
    return {"Last-Modified": _http_date(obj.last_modified), "ETag": _etag(obj),
            "Content-Type": obj.content_type or "binary/octet-stream", "Accept-Ranges": "bytes"}


def _parse_range(text: str | None, size: int):
    """(start, end) inclusive, None for "the whole object" (absent or unparseable, as S3 does); InvalidRange if unsatisfiable."""
    if not text:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", text)
    if not match or (match[1] == "" and match[2] == ""):
        return None  # S3 ignores ranges it cannot use (including several ranges)
    if match[1] == "":
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise _invalid_range(size)
        return max(size - suffix, 0), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if end < start:
        return None
    if start >= size:
        raise _invalid_range(size)
    return start, min(end, size - 1)


def _invalid_range(size: int) -> AwsError:
    return AwsError("InvalidRange", "The requested range is not satisfiable", 416, ActualObjectSize=size,
                    headers={"Content-Range": f"bytes */{size}"})


def _preconditions(request, obj) -> int | None:
    """304 or 412 per the conditional headers, or None to go on."""
    headers = request.headers
    etag = _etag(obj)
    modified = obj.last_modified.replace(microsecond=0)

    def matches(header):
        return any(tag.strip() in (etag, "*") for tag in header.split(","))

    def moment(header):
        try:
            return parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None

    if (value := headers.get("If-Match")) and not matches(value):
        return 412
    if (value := headers.get("If-Unmodified-Since")) and not headers.get("If-Match"):
        when = moment(value)
        if when is not None and modified > when:
            return 412
    if (value := headers.get("If-None-Match")) and matches(value):
        return 304
    if (value := headers.get("If-Modified-Since")) and not headers.get("If-None-Match"):
        when = moment(value)
        if when is not None and modified <= when:
            return 304
    return None


def _get(endpoint, request, key: str, head: bool):
    backend = endpoint.backend
    for attempt in range(2):
        try:
            obj = backend.head(key)
        except AwsError as error:
            if head and error.code == "NoSuchKey":
                return _response(404, request, {"Content-Type": "application/xml"}, b"")
            raise
        condition = _preconditions(request, obj)
        if condition == 304:
            return _response(304, request, {"ETag": _etag(obj), "Last-Modified": _http_date(obj.last_modified)})
        if condition == 412:
            raise AwsError("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                           412, Condition="If-Match")
        try:
            span = _parse_range(request.headers.get("Range"), obj.size)
        except AwsError:
            if head:
                return _response(416, request, {"Content-Range": f"bytes */{obj.size}"}, b"")
            raise
        headers = _object_headers(obj)
        if span is None:
            first, last, status = 0, obj.size - 1, 200
        else:
            (first, last), status = span, 206
            headers["Content-Range"] = f"bytes {first}-{last}/{obj.size}"
        length = last - first + 1 if obj.size else 0
        if head:
            headers["Content-Length"] = str(length)
            return _response(status, request, headers, b"")
        try:
            reader = backend.open(obj, first if span else None, last if span else None)
        except FileNotFoundError:
            if attempt == 0:
                continue  # replaced in between: its old bytes are gone, read the new ones
            raise AwsError("NoSuchKey", "The specified key does not exist.", 404, Key=key) from None
        return _response(status, request, headers, None, stream=reader, length=length)
    raise AssertionError("unreachable")


def _too_large(max_bytes):
    def error(size):
        return AwsError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                        ProposedSize=size, MaxSizeAllowed=max_bytes)

    return error


def _put(endpoint, request, key: str):
    backend = endpoint.backend
    max_bytes = backend.max_object_bytes()
    announced = request.headers.get("x-amz-decoded-content-length") or request.headers.get("Content-Length")
    if announced and announced.isdigit():
        backend.check_room(key, int(announced))
    spool, size = request.spool_body(max_bytes, _too_large(max_bytes))
    try:
        obj = backend.put(key, spool, size, request.headers.get("Content-Type") or "")
    finally:
        spool.close()
    headers = {"ETag": _etag(obj)}
    checksum = request.checksum
    if checksum is not None:
        headers[checksum.header] = checksum.value()
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return _response(200, request, headers)


def _copy(endpoint, request, key: str):
    source = unquote(request.headers["x-amz-copy-source"].strip())
    source, _, version = source.partition("?")
    if version and version != "versionId=null":
        raise AwsError("NoSuchVersion", "The specified version does not exist.", 404)
    source = source.removeprefix("/")
    source_bucket, _, source_key = source.partition("/")
    if not source_bucket or not source_key:
        raise AwsError("InvalidArgument", "Copy Source must mention the source bucket and key: "
                                          "sourcebucket/sourcekey", 400, ArgumentName="x-amz-copy-source")
    check_bucket(endpoint, request, source_bucket, "GetObject")
    _check_key(endpoint, source_key)
    directive = (request.headers.get("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise AwsError("InvalidArgument", "Unknown metadata directive.", 400, ArgumentName="x-amz-metadata-directive")
    if source_key == key and directive == "COPY":
        raise AwsError("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                                         "itself without changing the object's metadata, storage class, website "
                                         "redirect location or encryption attributes.")
    content_type = (request.headers.get("Content-Type") or "") if directive == "REPLACE" else None
    source_obj = endpoint.backend.head(source_key)
    condition = _preconditions_copy(request, source_obj)
    if condition:
        raise AwsError("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
    obj = endpoint.backend.copy(source_key, key, content_type)
    body = _xml(f'<CopyObjectResult xmlns="{NS}"><LastModified>{_iso(obj.last_modified)}</LastModified>'
                f"<ETag>{escape(_etag(obj))}</ETag></CopyObjectResult>")
    return _response(200, request, {"Content-Type": "application/xml"}, body)


def _preconditions_copy(request, obj) -> bool:
    headers = request.headers
    etag = _etag(obj)
    match = headers.get("x-amz-copy-source-if-match")
    if match and etag not in [t.strip() for t in match.split(",")]:
        return True
    none_match = headers.get("x-amz-copy-source-if-none-match")
    if none_match and etag in [t.strip() for t in none_match.split(",")]:
        return True
    return False


# --- listing -------------------------------------------------------------------------


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode((TOKEN_PREFIX + key).encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4)).decode("utf-8")
    except (ValueError, UnicodeError):
        text = ""
    if not text.startswith(TOKEN_PREFIX):
        raise AwsError("InvalidArgument", "The continuation token provided is incorrect", 400,
                       ArgumentName="continuation-token")
    return text[len(TOKEN_PREFIX):]


def _list(endpoint, request, bucket: str, v2: bool):
    params = request.params
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter") or None
    encoding = params.get("encoding-type")
    if encoding not in (None, "url"):
        raise AwsError("InvalidArgument", "Invalid Encoding Method specified in Request", 400,
                       ArgumentName="encoding-type")
    try:
        max_keys = int(params.get("max-keys", LIST_MAX_KEYS))
    except ValueError:
        raise AwsError("InvalidArgument", "Provided max-keys not an integer or within integer range", 400,
                       ArgumentName="max-keys") from None
    if max_keys < 0:
        raise AwsError("InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647", 400,
                       ArgumentName="maxKeys")
    token = params.get("continuation-token") if v2 else None
    start_after = params.get("start-after", "") if v2 else params.get("marker", "")
    cursor = decode_token(token) if token is not None else (start_after or None)
    listing = endpoint.backend.list(prefix=prefix, delimiter=delimiter, start_after=cursor,
                                    limit=min(max_keys, LIST_MAX_KEYS))
    objects, prefixes, truncated, next_after = listing

    def enc(text: str) -> str:
        return escape(quote(text, safe="/") if encoding == "url" else text)

    parts = [f'<ListBucketResult xmlns="{NS}">', f"<Name>{escape(bucket)}</Name>", f"<Prefix>{enc(prefix)}</Prefix>"]
    if v2:
        if token is not None:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if start_after:
            parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
        parts.append(f"<KeyCount>{len(objects) + len(prefixes)}</KeyCount>")
    else:
        parts.append(f"<Marker>{enc(start_after)}</Marker>")
    parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if encoding:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if truncated and next_after is not None:
        if v2:
            parts.append(f"<NextContinuationToken>{encode_token(next_after)}</NextContinuationToken>")
        else:
            parts.append(f"<NextMarker>{enc(next_after)}</NextMarker>")
    for obj in objects:
        parts.append(f"<Contents><Key>{enc(obj.key)}</Key><LastModified>{_iso(obj.last_modified)}</LastModified>"
                     f"<ETag>{escape(_etag(obj))}</ETag><Size>{obj.size}</Size>"
                     "<StorageClass>STANDARD</StorageClass></Contents>")
    for common in prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return _response(200, request, {"Content-Type": "application/xml"}, _xml("".join(parts)))


# --- multipart uploads (what boto3's upload_file/upload_fileobj use past 8 MB) -----------------


class _Concatenated:
    """The parts' bytes one after the other, as one reader."""

    def __init__(self, files):
        self.files = list(files)
        for handle in self.files:
            handle.seek(0)

    def read(self, size=-1):
        out = bytearray()
        while self.files and (size < 0 or len(out) < size):
            data = self.files[0].read(-1 if size < 0 else size - len(out))
            if not data:
                self.files.pop(0)
                continue
            out += data
        return bytes(out)


class Uploads:
    """The attempt's open multipart uploads; their parts wait in temporary files until completed or aborted."""

    def __init__(self):
        import threading

        self.lock = threading.Lock()
        self.open: dict[str, dict] = {}

    def create(self, key, content_type):
        import secrets

        with self.lock:
            if len(self.open) >= MAX_UPLOADS:
                raise AwsError("TooManyUploads", f"At most {MAX_UPLOADS} multipart uploads can be open at once in "
                                                 "a run; complete or abort one first.", 400)
            upload_id = secrets.token_urlsafe(32)
            self.open[upload_id] = {"key": key, "content_type": content_type, "parts": {}}
        return upload_id

    def get(self, upload_id, key):
        with self.lock:
            upload = self.open.get(upload_id)
        if upload is None or upload["key"] != key:
            raise AwsError("NoSuchUpload", "The specified multipart upload does not exist. The upload ID may be "
                                           "invalid, or the upload may have been aborted or completed.", 404,
                           UploadId=upload_id[:100])
        return upload

    def add_part(self, upload, number, spool, size, etag):
        with self.lock:
            old = upload["parts"].get(number)
            upload["parts"][number] = (spool, size, etag)
        if old is not None:
            old[0].close()

    def discard(self, upload_id):
        with self.lock:
            upload = self.open.pop(upload_id, None)
        for spool, _, _ in (upload or {}).get("parts", {}).values():
            spool.close()

    def close(self):
        for upload_id in list(self.open):
            self.discard(upload_id)


def _part_number(params) -> int:
    try:
        number = int(params.get("partNumber", ""))
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise AwsError("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", 400,
                       ArgumentName="partNumber")
    return number


def _multipart(endpoint, request, bucket: str, key: str):
    params, method = request.params, request.method
    if not key:
        raise AwsError("NotImplemented", "ListMultipartUploads is not implemented on this platform.", 501)
    _check_key(endpoint, key)
    uploads = endpoint.uploads
    if method == "POST" and "uploads" in params:
        upload_id = uploads.create(key, request.headers.get("Content-Type") or "")
        body = _xml(f'<InitiateMultipartUploadResult xmlns="{NS}"><Bucket>{escape(bucket)}</Bucket>'
                    f"<Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        return _response(200, request, {"Content-Type": "application/xml"}, body)
    upload_id = params.get("uploadId", "")
    upload = uploads.get(upload_id, key)
    if method == "PUT":
        if request.headers.get("x-amz-copy-source"):
            raise AwsError("NotImplemented", "UploadPartCopy is not implemented on this platform.", 501)
        number = _part_number(params)
        max_bytes = endpoint.backend.max_object_bytes()
        spool, size = request.spool_body(max_bytes, _too_large(max_bytes))
        import hashlib

        md5 = hashlib.md5(usedforsecurity=False)
        for chunk in iter(lambda: spool.read(1 << 20), b""):
            md5.update(chunk)
        etag = f'"{md5.hexdigest()}"'
        uploads.add_part(upload, number, spool, size, etag)
        headers = {"ETag": etag}
        checksum = request.checksum
        if checksum is not None:
            headers[checksum.header] = checksum.value()
        return _response(200, request, headers)
    if method == "DELETE":
        uploads.discard(upload_id)
        return _response(204, request)
    if method == "POST":
        return _complete(endpoint, request, bucket, key, upload_id, upload)
    raise AwsError("NotImplemented", "ListParts is not implemented on this platform.", 501)


def _complete(endpoint, request, bucket, key, upload_id, upload):
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(request.small_body())
    except ET.ParseError:
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                                       "published schema.") from None
    listed = []
    for part in root.iter():
        if part.tag.rsplit("}", 1)[-1] != "Part":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in part}
        try:
            listed.append((int(fields.get("PartNumber", "")), fields.get("ETag", "")))
        except ValueError:
            raise AwsError("MalformedXML", "A part has no valid PartNumber.") from None
    if not listed:
        raise AwsError("MalformedXML", "You must specify at least one part.")
    numbers = [number for number, _ in listed]
    if numbers != sorted(set(numbers)):
        raise AwsError("InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered by "
                                           "part number.")
    parts = upload["parts"]
    chosen = []
    for index, (number, etag) in enumerate(listed):
        stored = parts.get(number)
        if stored is None or (etag and etag.strip('"') != stored[2].strip('"')):
            raise AwsError("InvalidPart", "One or more of the specified parts could not be found. The part may not "
                                          "have been uploaded, or the specified entity tag may not match the part's "
                                          "entity tag.", 400, PartNumber=number)
        if index < len(listed) - 1 and stored[1] < MIN_PART_BYTES:
            raise AwsError("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.",
                           400, PartNumber=number, ProposedSize=stored[1], MinSizeAllowed=MIN_PART_BYTES)
        chosen.append(stored)
    size = sum(part[1] for part in chosen)
    max_bytes = endpoint.backend.max_object_bytes()
    if size > max_bytes:
        raise _too_large(max_bytes)(size)
    endpoint.backend.check_room(key, size)
    obj = endpoint.backend.put(key, _Concatenated(part[0] for part in chosen), size, upload["content_type"])
    endpoint.uploads.discard(upload_id)
    body = _xml(f'<CompleteMultipartUploadResult xmlns="{NS}"><Location>/{escape(bucket)}/{escape(quote(key))}'
                f"</Location><Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                f"<ETag>{escape(_etag(obj))}</ETag></CompleteMultipartUploadResult>")
    return _response(200, request, {"Content-Type": "application/xml"}, body)


def _delete_many(endpoint, request):
    """DeleteObjects: up to 1,000 keys; each deleted, or reported with its error."""
    import xml.etree.ElementTree as ET

    spool, _ = request.spool_body(1024 * 1024, lambda size: AwsError("MalformedXML", "The request is too large."))
    try:
        root = ET.fromstring(spool.read())
    except ET.ParseError:
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                                       "published schema.") from None
    finally:
        spool.close()
    quiet = False
    keys = []
    for element in root:
        name = element.tag.rsplit("}", 1)[-1]
        if name == "Quiet":
            quiet = (element.text or "").strip().lower() == "true"
        elif name == "Object":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
            keys.append(fields.get("Key", ""))
    if not keys or len(keys) > 1000:
        raise AwsError("MalformedXML", "Delete between 1 and 1,000 objects per request.")
    parts = [f'<DeleteResult xmlns="{NS}">']
    for key in keys:
        try:
            _check_key(endpoint, key)
            endpoint.backend.delete(key)
        except AwsError as error:
            parts.append(f"<Error><Key>{escape(key)}</Key><Code>{escape(error.code)}</Code>"
                         f"<Message>{escape(error.message)}</Message></Error>")
            continue
        if not quiet:
            parts.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
    parts.append("</DeleteResult>")
    return _response(200, request, {"Content-Type": "application/xml"}, _xml("".join(parts)))
