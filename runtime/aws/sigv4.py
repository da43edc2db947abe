"""AWS Signature Version 4, verified from the specification (no AWS library).

Pure standard library, no Django. ``parse_authorization`` and
``parse_presigned`` read what a client claims; ``canonical_request``,
``string_to_sign`` and ``signing_key`` rebuild what it must have signed;
``AwsChunkedReader`` decodes ``Content-Encoding: aws-chunked`` bodies (with
their chunk signatures or trailing checksums); ``Checksum`` computes the
``x-amz-checksum-*`` algorithms S3 accepts.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_PAYLOADS = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
MAX_CLOCK_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class SigV4Error(Exception):
    """A request whose signature information is missing, malformed or wrong.

    ``kind`` says which: "missing", "malformed", "scope", "skew", "expired",
    "mismatch", "payload"; each service turns it into its own error shape.
    """

    def __init__(self, kind: str, message: str, **detail):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class Scope:
    date: str      # YYYYMMDD
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class Claim:
    """What a request says about its signature."""

    access_key: str
    scope: Scope
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str                  # YYYYMMDDTHHMMSSZ
    presigned: bool = False
    expires: int | None = None     # presigned URLs only
    security_token: str | None = None


def _parse_credential(credential: str) -> tuple[str, Scope]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise SigV4Error("malformed", f"Credential '{credential[:200]}' is not of the form "
                                      "<key>/<date>/<region>/<service>/aws4_request.")
    key, date, region, service, _ = parts
    if not re.fullmatch(r"\d{8}", date):
        raise SigV4Error("malformed", f"The credential scope date '{date[:20]}' is not YYYYMMDD.")
    return key, Scope(date, region, service)


def _parse_signed_headers(text: str) -> tuple[str, ...]:
    names = tuple(text.split(";"))
    if not names or any(not n or n != n.lower() for n in names) or list(names) != sorted(names):
        raise SigV4Error("malformed", "SignedHeaders must be lowercase header names, sorted, separated by ';'.")
    if "host" not in names:
        raise SigV4Error("malformed", "The host header must be signed.")
    return names


def parse_authorization(headers) -> Claim:
    """The claim of a request signed in its Authorization header (``headers``: case-insensitive mapping)."""
    header = headers.get("Authorization")
    if not header:
        raise SigV4Error("missing", "The request has no Authorization header.")
    if not header.startswith(ALGORITHM + " "):
        raise SigV4Error("malformed", "Only AWS4-HMAC-SHA256 (Signature Version 4) is supported.")
    match = _AUTH_RE.match(header)
    if not match:
        raise SigV4Error("malformed", "The Authorization header is malformed.")
    key, scope = _parse_credential(match["credential"])
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise SigV4Error("malformed", "The request has no X-Amz-Date header.")
    return Claim(access_key=key, scope=scope, signed_headers=_parse_signed_headers(match["signed"]),
                 signature=match["signature"], amz_date=amz_date.strip(),
                 security_token=headers.get("X-Amz-Security-Token"))


def parse_presigned(query: list[tuple[str, str]]) -> Claim | None:
    """The claim of a presigned URL (signature in the query string), or None if it is not one."""
    params = dict(query)
    if "X-Amz-Signature" not in params and "X-Amz-Algorithm" not in params:
        return None
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise SigV4Error("malformed", "X-Amz-Algorithm must be AWS4-HMAC-SHA256.")
    for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires"):
        if not params.get(name):
            raise SigV4Error("malformed", f"The presigned URL has no {name}.")
    if not re.fullmatch(r"[0-9a-f]{64}", params["X-Amz-Signature"]):
        raise SigV4Error("malformed", "X-Amz-Signature is not a hex SHA-256 HMAC.")
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise SigV4Error("malformed", "X-Amz-Expires must be a number of seconds.") from None
    if not 1 <= expires <= MAX_PRESIGNED_EXPIRES:
        raise SigV4Error("malformed", "X-Amz-Expires must be between 1 and 604800 seconds.")
    key, scope = _parse_credential(params["X-Amz-Credential"])
    return Claim(access_key=key, scope=scope, signed_headers=_parse_signed_headers(params["X-Amz-SignedHeaders"]),
                 signature=params["X-Amz-Signature"], amz_date=params["X-Amz-Date"], presigned=True,
                 expires=expires, security_token=params.get("X-Amz-Security-Token"))


def request_time(claim: Claim) -> datetime:
    try:
        when = datetime.strptime(claim.amz_date, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise SigV4Error("malformed", f"X-Amz-Date '{claim.amz_date[:30]}' is not YYYYMMDDTHHMMSSZ.") from None
    if claim.amz_date[:8] != claim.scope.date:
        raise SigV4Error("scope", "The credential scope date does not match X-Amz-Date.")
    return when


def check_time(claim: Claim, now: datetime) -> None:
    """Header signatures within 15 minutes of now; presigned URLs before they expire."""
    when = request_time(claim)
    if claim.presigned:
        if now < when - MAX_CLOCK_SKEW:
            raise SigV4Error("skew", "The presigned URL is dated in the future.")
        if now > when + timedelta(seconds=claim.expires or 0):
            raise SigV4Error("expired", "The presigned URL has expired.")
        return
    if abs(now - when) > MAX_CLOCK_SKEW:
        raise SigV4Error("skew", f"Signature expired: {claim.amz_date} is now earlier or later than "
                                 f"{now.strftime(AMZ_DATE_FORMAT)} by more than 15 minutes.",
                         request_time=claim.amz_date, server_time=now.strftime(AMZ_DATE_FORMAT))


# --- the canonical request ------------------------------------------------------------


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 wants it: unreserved characters stay, the rest %XX (upper case)."""
    return quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_uri(raw_path: str, service: str) -> str:
    """S3 signs the path as sent; every other service signs it normalised and encoded once more."""
    path = raw_path or "/"
    if service == "s3":
        return path
    segments = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in (".", ""):
            segments.append(segment)
    normalised = "/" + "/".join(segments)
    if path.endswith("/") and normalised != "/":
        normalised += "/"
    return quote(normalised, safe="/~")


def split_query(raw_query: str) -> list[tuple[str, str]]:
    """(name, value) pairs, percent-decoded; '+' stays '+' (SigV4 clients encode spaces as %20)."""
    pairs = []
    if raw_query:
        for part in raw_query.split("&"):
            if part == "":
                continue
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: list[tuple[str, str]], *, exclude: tuple[str, ...] = ()) -> str:
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs if k not in exclude)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers, signed: tuple[str, ...]) -> str:
    lines = []
    for name in signed:
        values = headers.get_all(name) if hasattr(headers, "get_all") else None
        if values is None:
            value = headers.get(name)
            values = [] if value is None else [value]
        if not values:
            raise SigV4Error("malformed", f"The signed header '{name}' is not in the request.")
        lines.append(f"{name}:{','.join(' '.join(str(v).split()) for v in values)}\n")
    return "".join(lines)


def canonical_request(method: str, raw_path: str, query: list[tuple[str, str]], headers, claim: Claim,
                      payload_hash: str) -> str:
    exclude = ("X-Amz-Signature",) if claim.presigned else ()
    return "\n".join([
        method.upper(),
        canonical_uri(raw_path, claim.scope.service),
        canonical_query(query, exclude=exclude),
        canonical_headers(headers, claim.signed_headers),
        ";".join(claim.signed_headers),
        payload_hash,
    ])


def string_to_sign(claim: Claim, canonical: str) -> str:
    return "\n".join([ALGORITHM, claim.amz_date, str(claim.scope),
                      hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def signing_key(secret: str, scope: Scope) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (scope.date, scope.region, scope.service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(claim: Claim, secret: str, method: str, raw_path: str, query: list[tuple[str, str]], headers,
           payload_hash: str) -> bytes:
    """Raise SigV4Error("mismatch") unless the claim's signature is right; the signing key otherwise."""
    canonical = canonical_request(method, raw_path, query, headers, claim, payload_hash)
    to_sign = string_to_sign(claim, canonical)
    key = signing_key(secret, claim.scope)
    if not hmac.compare_digest(signature(key, to_sign), claim.signature):
        raise SigV4Error("mismatch", "The request signature we calculated does not match the signature you "
                                     "provided. Check your key and signing method.",
                         string_to_sign=to_sign, canonical_request=canonical)
    return key


def payload_hash_claim(headers, service: str, presigned: bool) -> str | None:
    """The x-amz-content-sha256 the request declares (S3), or None when the body must be hashed here."""
    value = headers.get("x-amz-content-sha256")
    if presigned and value is None:
        return UNSIGNED_PAYLOAD
    if value is None:
        if service == "s3":
            raise SigV4Error("malformed", "Missing required header for this request: x-amz-content-sha256",
                             code="InvalidRequest")
        return None
    value = value.strip()
    if value in (UNSIGNED_PAYLOAD, *STREAMING_PAYLOADS) or _HEX64.match(value):
        return value
    raise SigV4Error("payload", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-..., or a "
                                "SHA-256 hash in hex.", code="InvalidArgument")


# --- checksums ---------------------------------------------------------------------------


def _crc_table(poly: int, width: int) -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C_TABLE: list[int] | None = None
_CRC64NVME_TABLE: list[int] | None = None


class _Crc32c:
    def __init__(self):
        global _CRC32C_TABLE
        if _CRC32C_TABLE is None:
            _CRC32C_TABLE = _crc_table(0x82F63B78, 32)
        self.crc = 0xFFFFFFFF

    def update(self, data: bytes) -> None:
        crc, table = self.crc, _CRC32C_TABLE
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self.crc = crc

    def digest(self) -> bytes:
        return (self.crc ^ 0xFFFFFFFF).to_bytes(4, "big")


class _Crc64Nvme:
    def __init__(self):
        global _CRC64NVME_TABLE
        if _CRC64NVME_TABLE is None:
            _CRC64NVME_TABLE = _crc_table(0x9A6C9329AC4BC9B5, 64)
        self.crc = 0xFFFFFFFFFFFFFFFF

    def update(self, data: bytes) -> None:
        crc, table = self.crc, _CRC64NVME_TABLE
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self.crc = crc

    def digest(self) -> bytes:
        return (self.crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


class _Crc32:
    def __init__(self):
        self.crc = 0

    def update(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)

    def digest(self) -> bytes:
        return self.crc.to_bytes(4, "big")


CHECKSUM_ALGORITHMS = {
    "crc32": _Crc32,
    "crc32c": _Crc32c,
    "crc64nvme": _Crc64Nvme,
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
}


class Checksum:
    """One x-amz-checksum-<algorithm> to verify: feed the body, then ``check()``."""

    def __init__(self, algorithm: str, expected: str | None = None):
        self.algorithm = algorithm
        self.expected = expected
        self.hasher = CHECKSUM_ALGORITHMS[algorithm]()

    @property
    def header(self) -> str:
        return f"x-amz-checksum-{self.algorithm}"

    def update(self, data: bytes) -> None:
        self.hasher.update(data)

    def value(self) -> str:
        return base64.b64encode(self.hasher.digest()).decode("ascii")

    def check(self) -> None:
        if self.expected is None:
            raise SigV4Error("payload", f"The trailer {self.header} is missing.", code="InvalidRequest")
        if self.value() != self.expected.strip():
            raise SigV4Error("payload", f"Value for {self.header} header is invalid.", code="BadDigest")


def checksum_from_headers(headers) -> Checksum | None:
    """The x-amz-checksum-* header the client sent with the body (at most one), as a Checksum."""
    found = [(name, headers.get(f"x-amz-checksum-{name}")) for name in CHECKSUM_ALGORITHMS]
    found = [(name, value) for name, value in found if value is not None]
    if len(found) > 1:
        raise SigV4Error("payload", "Expecting a single x-amz-checksum- header. Multiple checksum Types are "
                                    "not allowed.", code="InvalidRequest")
    if found:
        return Checksum(*found[0])
    return None


def trailer_checksum(headers) -> Checksum | None:
    """The checksum announced in x-amz-trailer, to be read after the last aws-chunked chunk."""
    trailer = (headers.get("x-amz-trailer") or "").strip().lower()
    if not trailer:
        return None
    algorithm = trailer.removeprefix("x-amz-checksum-")
    if algorithm == trailer or algorithm not in CHECKSUM_ALGORITHMS:
        raise SigV4Error("payload", f"The trailer {trailer[:60]} is not supported.", code="InvalidRequest")
    return Checksum(algorithm)


# --- aws-chunked bodies ---------------------------------------------------------------------


class AwsChunkedReader:
    """Decodes an aws-chunked body from ``stream`` (a binary reader of exactly the request's body).

    ``read(n)`` returns decoded payload bytes. With STREAMING-AWS4-HMAC-SHA256-PAYLOAD
    every chunk's signature is checked against the previous one (seeded with the
    request's signature); with a trailer, the trailing checksum is parsed (and its
    signature checked for the signed variant). Errors raise SigV4Error("payload").
    """

    MAX_LINE = 4096

    def __init__(self, stream, *, mode: str, claim: Claim | None = None, key: bytes | None = None,
                 trailer: Checksum | None = None):
        self.stream = stream
        self.mode = mode
        self.claim = claim
        self.key = key
        self.previous = claim.signature if claim else ""
        self.trailer = trailer
        self.remaining = 0       # bytes left in the current chunk
        self.chunk_hash = None
        self.chunk_signature = None
        self.done = False
        self.decoded = 0

    def _line(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\r\n"):
            byte = self.stream.read(1)
            if not byte:
                raise SigV4Error("payload", "The aws-chunked body ended early.", code="IncompleteBody")
            line += byte
            if len(line) > self.MAX_LINE:
                raise SigV4Error("payload", "An aws-chunked header line is too long.", code="InvalidRequest")
        return bytes(line[:-2])

    def _start_chunk(self) -> None:
        header = self._line().decode("latin-1")
        size_text, _, extension = header.partition(";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise SigV4Error("payload", "An aws-chunked chunk size is not hexadecimal.", code="InvalidRequest") from None
        if size < 0:
            raise SigV4Error("payload", "An aws-chunked chunk size is negative.", code="InvalidRequest")
        signed = self.mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        if signed:
            name, _, value = extension.partition("=")
            if name.strip() != "chunk-signature" or not re.fullmatch(r"[0-9a-f]{64}", value.strip()):
                raise SigV4Error("payload", "An aws-chunked chunk has no chunk-signature.", code="InvalidRequest")
            self.chunk_signature = value.strip()
            self.chunk_hash = hashlib.sha256()
        self.remaining = size
        if size == 0:
            self._finish_chunk()
            self._read_trailer()
            self.done = True

    def _finish_chunk(self) -> None:
        if self.chunk_signature is None:
            return
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.claim.amz_date, str(self.claim.scope),
                             self.previous, EMPTY_SHA256, self.chunk_hash.hexdigest()])
        expected = signature(self.key, to_sign)
        if not hmac.compare_digest(expected, self.chunk_signature):
            raise SigV4Error("mismatch", "The chunk signature we calculated does not match the signature you provided.")
        self.previous = expected
        self.chunk_signature = None

    def _read_trailer(self) -> None:
        trailers = {}
        while True:
            line = self._line()
            if line == b"":
                break
            name, _, value = line.decode("latin-1").partition(":")
            trailers[name.strip().lower()] = value.strip()
        trailer_signature = trailers.pop("x-amz-trailer-signature", None)
        if self.trailer is not None:
            self.trailer.expected = trailers.get(self.trailer.header)
            self.trailer.check()
            if self.mode == STREAMING_SIGNED_TRAILER:
                canonical = f"{self.trailer.header}:{self.trailer.expected}\n"
                to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", self.claim.amz_date, str(self.claim.scope),
                                     self.previous, hashlib.sha256(canonical.encode()).hexdigest()])
                if trailer_signature is None or not hmac.compare_digest(signature(self.key, to_sign), trailer_signature):
                    raise SigV4Error("mismatch", "The trailer signature we calculated does not match.")

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while not self.done and (size < 0 or len(out) < size):
            if self.remaining == 0:
                self._start_chunk()
                continue
            want = self.remaining if size < 0 else min(self.remaining, size - len(out))
            data = self.stream.read(want)
            if not data:
                raise SigV4Error("payload", "The aws-chunked body ended early.", code="IncompleteBody")
            self.remaining -= len(data)
            if self.chunk_hash is not None:
                self.chunk_hash.update(data)
            if self.trailer is not None:
                self.trailer.update(data)
            out += data
            if self.remaining == 0:
                if self._line() != b"":
                    raise SigV4Error("payload", "An aws-chunked chunk does not end with CRLF.", code="InvalidRequest")
                self._finish_chunk()
        self.decoded += len(out)
        return bytes(out)
