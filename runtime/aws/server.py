"""One attempt's AWS-compatible endpoint: HTTP/1.1 on a Unix socket, every request SigV4-verified.

Pure standard library, no Django: what the endpoint reads and writes comes
from a ``backend`` (runtime/aws/backend.py in the worker) and the Function's
identity. Requests are routed by the service of their credential scope
(``sts``, ``ssm``, ``s3``), which the signature covers. Each connection is
served by its own thread; at most ``MAX_CONNECTIONS`` at a time (further
connections wait in the socket's backlog).

Nothing here logs a request line or a header: presigned URLs carry the
session token in the query string, and the credentials must never reach a log.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from . import s3, ssm, sts
from .credentials import CredentialStore
from .errors import AwsError, json_error_body, s3_error_body, sts_error_body
from .messages import COPY_CHUNK, MAX_SMALL_BODY, Request, Response, _Body
from .sigv4 import (
    UNSIGNED_PAYLOAD,
    SigV4Error,
    check_time,
    parse_authorization,
    parse_presigned,
    payload_hash_claim,
    verify,
)

log = logging.getLogger(__name__)

SERVICES = ("sts", "ssm", "s3")
MAX_CONNECTIONS = 32
IDLE_TIMEOUT_S = 120


@dataclass(frozen=True)
class Identity:
    """What the attempt may reach: the same values as the Function's environment."""

    function_name: str
    account_id: str          # 12 digits, from the organization's id
    region: str
    role_arn: str
    secrets_path: str
    bucket: str

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def base_arn(self) -> str:
        return f"arn:aws:sts::{self.account_id}:assumed-role/samsara-functions-attempt/{self.function_name}"

    def session_arn(self, session_name: str) -> str:
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.role_name}/{session_name}"

    @classmethod
    def from_environment(cls, env: dict[str, str]) -> "Identity":
        return cls(
            function_name=env["SamsaraFunctionName"],
            account_id=env["SamsaraFunctionExecRoleArn"].split(":")[4],
            region=env["AWS_REGION"],
            role_arn=env["SamsaraFunctionExecRoleArn"],
            secrets_path=env["SamsaraFunctionSecretsPath"],
            bucket=env["SamsaraFunctionStorageName"],
        )


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, path, endpoint):
        self.endpoint = endpoint
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(path, _Handler)

    def process_request(self, request, client_address):
        # Wait for a free slot before taking on another connection; give up
        # waiting (and drop the connection) only when the endpoint closes.
        while not self.slots.acquire(timeout=0.5):
            if self.endpoint.closed:
                self.shutdown_request(request)
                return
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def _forget(self, request):
        with self.connections_lock:
            if request in self.connections:
                self.connections.discard(request)
                self.slots.release()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def close_connections(self):
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SamsaraFunctionsAWS"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def setup(self):
        super().setup()
        self.expect_continue = False

    def handle_expect_100(self):
        # "100 Continue" only once the request is authenticated (Request._continue).
        self.expect_continue = True
        return True

    def _serve(self):
        self.server.endpoint.dispatch(self)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # never log request lines: presigned URLs carry credentials

    def address_string(self):
        return "function"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _guess_service(request: Request) -> str:
    if request.headers.get("X-Amz-Target"):
        return "ssm"
    if request.method == "POST" and request.raw_path in ("", "/") and "x-www-form-urlencoded" in (
            request.headers.get("Content-Type") or ""):
        return "sts"
    return "s3"


_AUTH_ERRORS = {
    # kind: {service: (code, status)}
    "missing": {"s3": ("AccessDenied", 403), "sts": ("MissingAuthenticationToken", 403),
                "ssm": ("MissingAuthenticationTokenException", 400)},
    "malformed": {"s3": ("AuthorizationHeaderMalformed", 400), "sts": ("IncompleteSignature", 400),
                  "ssm": ("IncompleteSignatureException", 400)},
    "unknown": {"s3": ("InvalidAccessKeyId", 403), "sts": ("InvalidClientTokenId", 403),
                "ssm": ("UnrecognizedClientException", 400)},
    "expired_token": {"s3": ("ExpiredToken", 400), "sts": ("ExpiredToken", 403), "ssm": ("ExpiredTokenException", 400)},
    "bad_token": {"s3": ("InvalidToken", 400), "sts": ("InvalidClientTokenId", 403),
                  "ssm": ("UnrecognizedClientException", 400)},
    "skew": {"s3": ("RequestTimeTooSkewed", 403), "sts": ("SignatureDoesNotMatch", 403),
             "ssm": ("InvalidSignatureException", 400)},
    "expired": {"s3": ("AccessDenied", 403), "sts": ("AccessDenied", 403), "ssm": ("AccessDeniedException", 400)},
    "mismatch": {"s3": ("SignatureDoesNotMatch", 403), "sts": ("SignatureDoesNotMatch", 403),
                 "ssm": ("InvalidSignatureException", 400)},
    "scope": {"s3": ("AuthorizationHeaderMalformed", 400), "sts": ("SignatureDoesNotMatch", 403),
              "ssm": ("InvalidSignatureException", 400)},
}

_AUTH_MESSAGES = {
    "unknown": {"s3": "The AWS Access Key Id you provided does not exist in our records.",
                "sts": "The security token included in the request is invalid.",
                "ssm": "The security token included in the request is invalid."},
    "expired_token": {"s3": "The provided token has expired.",
                      "sts": "The security token included in the request is expired",
                      "ssm": "The security token included in the request is expired"},
    "bad_token": {"s3": "The provided token is malformed or otherwise invalid.",
                  "sts": "The security token included in the request is invalid.",
                  "ssm": "The security token included in the request is invalid."},
}


def auth_error(service: str, kind: str, message: str | None = None, **extra) -> AwsError:
    code, status = _AUTH_ERRORS[kind][service]
    text = message or _AUTH_MESSAGES.get(kind, {}).get(service) or "Access Denied"
    if kind == "missing" and service == "s3":
        text = "Access Denied: the request is not signed."
    elif kind == "missing":
        text = "Request is missing Authentication Token"
    return AwsError(code, text, status, **extra)


def _payload_error(error: SigV4Error) -> AwsError:
    code = error.detail.get("code", "InvalidRequest")
    status = {"XAmzContentSHA256Mismatch": 400, "BadDigest": 400, "IncompleteBody": 400}.get(code, 400)
    return AwsError(code, error.message, status)


class AwsEndpoint:
    """Serves one attempt: ``start(socket_path)``, then ``close()`` when the attempt ends."""

    def __init__(self, identity: Identity, backend, deadline: datetime):
        self.identity = identity
        self.backend = backend
        self.store = CredentialStore(deadline)
        self.closed = False
        self.server: _Server | None = None
        self.uploads = s3.Uploads()  # open multipart uploads
        self.thread: threading.Thread | None = None

    @property
    def base_credentials(self):
        return self.store.base

    def start(self, socket_path) -> None:
        path = os.fspath(socket_path)
        self.server = _Server(path, self)
        # The sandbox's uid is mapped to ours; nobody else needs the socket.
        os.chmod(path, 0o600)
        self.thread = threading.Thread(target=self._accept_loop, name="aws-endpoint", daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        # A blocking accept rather than serve_forever's polling: close() wakes
        # it at once by shutting the socket down, so ending an attempt costs
        # no poll interval.
        server = self.server
        while not self.closed:
            try:
                request, address = server.get_request()
            except OSError:
                if not self.closed:
                    time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            if self.closed:
                server.shutdown_request(request)
                return
            try:
                server.process_request(request, address)
            except Exception:
                log.exception("the AWS endpoint could not take a connection")
                server.shutdown_request(request)

    def close(self) -> None:
        """Credentials die now; open connections are cut; the socket stops accepting."""
        if self.closed:
            return
        self.closed = True
        self.store.close()
        self.uploads.close()  # parts of uploads never completed: their temporary files go now
        if self.server is not None:
            try:
                self.server.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            if self.thread is not None:
                self.thread.join(timeout=5)
            self.server.close_connections()
            self.server.server_close()

    # -- one request -------------------------------------------------------------

    def dispatch(self, handler: _Handler) -> None:
        request = Request(handler)
        service = _guess_service(request)
        try:
            service = self._authenticate(request, service)
            if service == "sts":
                response = sts.handle(self, request)
            elif service == "ssm":
                response = ssm.handle(self, request)
            else:
                response = s3.handle(self, request)
        except SigV4Error as error:
            response = self._error(service, request, self._sigv4_error(service, error))
        except AwsError as error:
            response = self._error(service, request, error)
        except Exception:
            log.exception("the AWS endpoint failed on a %s request", service)
            response = self._error(service, request, AwsError("InternalError", "We encountered an internal "
                                                                               "error. Please try again.", 500,
                                                              sender=False))
        if not request.body_consumed and self._body_pending(request):
            if not self._drain_small_body(request):
                # The unread body is still in the stream: this connection cannot carry another request.
                handler.close_connection = True
        self._send(handler, request, response)
        if response.then is not None:
            try:
                response.then()
            except Exception:
                log.exception("the AWS endpoint failed after a %s request", service)

    @staticmethod
    def _drain_small_body(request: Request) -> bool:
        """Read and drop a refused request's small body; whether the connection is clean again.

        Closing a socket with unread data makes the kernel reset the
        connection, and a reset can destroy the error response before the
        client reads it: boto3 then sees a bare status instead of the error.
        The body is read only when the client sent it without waiting for
        100 Continue (so it is on its way anyway).
        """
        try:
            length = request.content_length()
        except AwsError:
            return False
        if request.headers.get("Transfer-Encoding") or length is None or length > MAX_SMALL_BODY:
            return False
        if request.handler.expect_continue or request.body_started:
            return False
        try:
            _Body(request.handler.rfile, length).read()
        except (OSError, SigV4Error):
            return False
        request.body_consumed = True
        return True

    @staticmethod
    def _body_pending(request: Request) -> bool:
        try:
            return bool(request.content_length()) or bool(request.headers.get("Transfer-Encoding"))
        except AwsError:
            return True

    def _sigv4_error(self, service: str, error: SigV4Error) -> AwsError:
        if error.kind == "payload":
            return _payload_error(error)
        if error.kind == "malformed" and error.detail.get("code"):
            return AwsError(error.detail["code"], error.message, 400)
        extra = {}
        if error.kind == "mismatch" and service == "s3":
            extra = {"StringToSign": error.detail.get("string_to_sign", "")}
        if error.kind == "skew" and service == "s3":
            extra = {"RequestTime": error.detail.get("request_time", ""),
                     "ServerTime": error.detail.get("server_time", ""), "MaxAllowedSkewMilliseconds": 900000}
        if error.kind == "expired":
            return auth_error(service, "expired", "Request has expired")
        return auth_error(service, error.kind, error.message, **extra)

    def _authenticate(self, request: Request, service: str) -> str:
        try:
            claim = parse_presigned(request.query) or parse_authorization(request.headers)
        except SigV4Error as error:
            raise self._sigv4_error(service, error) from None
        if claim.scope.service not in SERVICES:
            raise AwsError("NotImplemented", f"This endpoint serves sts, ssm and s3, not "
                                             f"'{claim.scope.service[:40]}'.", 501)
        service = claim.scope.service
        if claim.scope.region != self.identity.region:
            if service == "s3":
                raise AwsError("AuthorizationHeaderMalformed",
                               f"The authorization header is malformed; the region '{claim.scope.region[:40]}' is "
                               f"wrong; expecting '{self.identity.region}'", 400, Region=self.identity.region,
                               headers={"x-amz-bucket-region": self.identity.region})
            raise auth_error(service, "scope", f"Credential should be scoped to a valid region, "
                                               f"not '{claim.scope.region[:40]}'. ")
        status, credential = self.store.lookup(claim.access_key)
        if status == "unknown":
            raise auth_error(service, "unknown")
        if status in ("retired", "expired"):
            raise auth_error(service, "expired_token")
        if not claim.security_token or claim.security_token != credential.session_token:
            raise auth_error(service, "bad_token")
        check_time(claim, _now())
        request.claim, request.credential = claim, credential
        if service == "s3":
            request.payload_claim = payload_hash_claim(request.headers, service, claim.presigned)
            request.signing_key = verify(claim, credential.secret_key, request.method, request.raw_path,
                                         request.query, request.headers, request.payload_claim)
        else:
            body = request.small_body()
            digest = hashlib.sha256(body).hexdigest()
            declared = request.headers.get("x-amz-content-sha256")
            if declared is not None and declared.strip() not in (digest, UNSIGNED_PAYLOAD):
                raise auth_error(service, "mismatch", "The request body does not match x-amz-content-sha256.")
            request.body = body
            request.signing_key = verify(claim, credential.secret_key, request.method, request.raw_path,
                                         request.query, request.headers, declared.strip() if declared else digest)
        return service

    # -- answers ----------------------------------------------------------------------

    def _error(self, service: str, request: Request, error: AwsError) -> Response:
        headers = dict(error.headers)
        if service == "s3":
            headers.update({"Content-Type": "application/xml", "x-amz-request-id": request.request_id,
                            "x-amz-id-2": request.request_id})
            body = None if request.method == "HEAD" else s3_error_body(error, request.request_id, request.request_id)
            return Response(error.status, headers, body)
        request_id = str(uuid.uuid4())
        headers["x-amzn-RequestId"] = request_id
        if service == "sts":
            headers["Content-Type"] = "text/xml"
            return Response(error.status, headers, sts_error_body(error, request_id))
        headers["Content-Type"] = "application/x-amz-json-1.1"
        return Response(error.status, headers, json_error_body(error))

    def _send(self, handler: _Handler, request: Request, response: Response) -> None:
        try:
            handler.send_response(response.status)
            names = {name.lower() for name, _ in response.headers}
            for name, value in response.headers:
                handler.send_header(name, str(value))
            if "content-length" not in names:
                if response.stream is not None:
                    handler.send_header("Content-Length", str(response.length))
                elif response.status not in (204, 304):
                    handler.send_header("Content-Length", str(len(response.body or b"")))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            if request.method != "HEAD":
                if response.stream is not None:
                    while True:
                        chunk = response.stream.read(COPY_CHUNK)
                        if not chunk:
                            break
                        handler.wfile.write(chunk)
                elif response.body:
                    handler.wfile.write(response.body)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the Function went away mid-answer
        finally:
            if response.stream is not None:
                try:
                    response.stream.close()
                except Exception:
                    pass
