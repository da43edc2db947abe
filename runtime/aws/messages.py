"""The endpoint's HTTP messages as the services (s3, ssm, sts) see them: a verified request, a response.

Their own module so the services and the server (which routes to them)
both import these types, and neither imports the other.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import uuid

from .errors import AwsError
from .sigv4 import (
    STREAMING_PAYLOADS,
    UNSIGNED_PAYLOAD,
    AwsChunkedReader,
    SigV4Error,
    checksum_from_headers,
    split_query,
    trailer_checksum,
)

MAX_SMALL_BODY = 1024 * 1024        # STS and SSM requests
SPOOL_IN_MEMORY = 1024 * 1024       # larger S3 bodies go to a temporary file
COPY_CHUNK = 256 * 1024


class Response:
    def __init__(self, status: int, headers=None, body: bytes | None = b"", *, stream=None, length: int | None = None):
        self.status = status
        self.headers = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        self.body = body
        self.stream = stream      # a reader of `length` bytes, closed after sending
        self.length = length
        self.then = None          # work for the connection's thread once the answer is sent


class _Body:
    """Exactly Content-Length bytes of the request body, never more."""

    def __init__(self, rfile, length: int):
        self.rfile = rfile
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.rfile.read(size)
        self.remaining -= len(data)
        if not data:
            raise SigV4Error("payload", "The request body ended before Content-Length bytes arrived.",
                             code="IncompleteBody")
        return data


class Request:
    """One HTTP request as the services see it, with its verified credential."""

    def __init__(self, handler):
        # handler: the server's http.server.BaseHTTPRequestHandler for this connection
        self.handler = handler
        self.method = handler.command
        target = handler.path
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        self.raw_path, _, self.raw_query = target.partition("?")
        self.query = split_query(self.raw_query)
        self.params = dict(self.query)
        self.headers = handler.headers
        self.request_id = uuid.uuid4().hex[:16].upper()
        self.claim = None
        self.credential = None
        self.signing_key = None
        self.payload_claim: str | None = None
        self.body_consumed = False
        self.body_started = False  # some of the body was read: what is left is unknown
        self.body = b""         # STS and SSM: the (small) body, read to verify its signature
        self.checksum = None    # S3 uploads: the x-amz-checksum-* verified, echoed in the answer

    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            raise AwsError("InvalidArgument", "Content-Length is not a number.") from None
        if length < 0:
            raise AwsError("InvalidArgument", "Content-Length is negative.")
        return length

    def _continue(self) -> None:
        if self.handler.expect_continue:
            self.handler.expect_continue = False
            self.handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.handler.wfile.flush()

    def small_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise AwsError("InvalidRequest", "Transfer-Encoding is not supported; send Content-Length.")
        length = self.content_length() or 0
        if length > MAX_SMALL_BODY:
            raise AwsError("RequestEntityTooLarge", "The request body is too large.", 413)
        self._continue()
        self.body_started = True
        data = _Body(self.handler.rfile, length).read() if length else b""
        self.body_consumed = True
        return data

    def spool_body(self, max_bytes: int, on_too_large):
        """Read an S3 body (plain or aws-chunked) into a temporary file, verifying what the client declared.

        Returns (file positioned at 0, size). ``on_too_large(size)`` makes the
        error for a body over ``max_bytes``.
        """
        if self.headers.get("Transfer-Encoding"):
            raise AwsError("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        length = self.content_length()
        if length is None:
            raise AwsError("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        claim = self.payload_claim
        encodings = [e.strip() for e in (self.headers.get("Content-Encoding") or "").split(",") if e.strip()]
        chunked = claim in STREAMING_PAYLOADS or "aws-chunked" in encodings
        if chunked:
            decoded = self.headers.get("x-amz-decoded-content-length")
            try:
                expected = int(decoded) if decoded is not None else None
            except ValueError:
                raise AwsError("InvalidArgument", "x-amz-decoded-content-length is not a number.") from None
            if expected is None:
                raise AwsError("MissingContentLength", "aws-chunked uploads need x-amz-decoded-content-length.", 411)
        else:
            expected = length
        if expected > max_bytes:
            raise on_too_large(expected)
        checksum = checksum_from_headers(self.headers)
        trailer = trailer_checksum(self.headers) if chunked else None
        self._continue()
        self.body_started = True
        source = _Body(self.handler.rfile, length)
        if chunked:
            mode = claim if claim in STREAMING_PAYLOADS else "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
            if mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" and trailer is None:
                mode = "unsigned"
            source = AwsChunkedReader(source, mode=mode, claim=self.claim, key=self.signing_key, trailer=trailer)
        sha256 = hashlib.sha256() if claim not in (UNSIGNED_PAYLOAD, *STREAMING_PAYLOADS) else None
        md5_header = self.headers.get("Content-MD5")
        md5 = hashlib.md5(usedforsecurity=False) if md5_header else None
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        size = 0
        try:
            while True:
                data = source.read(COPY_CHUNK)
                if not data:
                    break
                size += len(data)
                if size > max_bytes:
                    raise on_too_large(size)
                for hasher in (sha256, md5, checksum):
                    if hasher is not None:
                        hasher.update(data)
                spool.write(data)
            self.body_consumed = not chunked or source.done
            if chunked and not source.done:
                raise SigV4Error("payload", "The aws-chunked body has no final chunk.", code="IncompleteBody")
            if chunked and isinstance(source.stream, _Body) and source.stream.remaining:
                raise SigV4Error("payload", "Data follows the final aws-chunked chunk.", code="InvalidRequest")
            if size != expected:
                raise SigV4Error("payload", f"You did not provide the number of bytes specified by the "
                                            f"Content-Length HTTP header ({size} of {expected}).", code="IncompleteBody")
            if sha256 is not None and sha256.hexdigest() != claim:
                raise SigV4Error("payload", "The provided 'x-amz-content-sha256' header does not match what was "
                                            "computed.", code="XAmzContentSHA256Mismatch")
            if md5 is not None:
                if base64.b64encode(md5.digest()).decode() != md5_header.strip():
                    raise SigV4Error("payload", "The Content-MD5 you specified did not match what we received.",
                                     code="BadDigest")
            if checksum is not None:
                checksum.expected = checksum.expected or ""
                checksum.check()
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        self.checksum = checksum or trailer
        return spool, size
