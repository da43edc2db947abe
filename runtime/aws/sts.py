"""STS over the query protocol: AssumeRole (and GetCallerIdentity), answered in XML."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from .errors import AwsError
from .messages import Response

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _answer(action: str, result: str):
    request_id = str(uuid.uuid4())
    body = (f'<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
    return Response(200, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode())


def _caller_arn(endpoint, credential) -> str:
    if credential.kind == "role":
        return endpoint.identity.session_arn(credential.session_name)
    return endpoint.identity.base_arn


def handle(endpoint, request):
    params = dict(request.query)
    if request.method == "POST":
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", ""):
            raise AwsError("InvalidParameterValue", "STS takes form-encoded parameters.")
        try:
            params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise AwsError("MalformedQueryString", "The request body is not UTF-8.") from None
    elif request.method != "GET":
        raise AwsError("InvalidAction", f"STS does not answer {request.method} requests.")
    action = params.get("Action")
    if action == "AssumeRole":
        return _assume_role(endpoint, request.credential, params)
    if action == "GetCallerIdentity":
        return _answer("GetCallerIdentity", (
            f"<Arn>{escape(_caller_arn(endpoint, request.credential))}</Arn>"
            f"<UserId>{escape(request.credential.access_key)}</UserId>"
            f"<Account>{endpoint.identity.account_id}</Account>"))
    if not action:
        raise AwsError("MissingAction", "The request has no Action.")
    raise AwsError("AccessDenied", f"User: {_caller_arn(endpoint, request.credential)} is not authorized to perform: "
                                   f"sts:{action[:60]}", 403)


def _assume_role(endpoint, credential, params):
    identity = endpoint.identity
    role_arn = params.get("RoleArn")
    session_name = params.get("RoleSessionName")
    if not role_arn:
        raise AwsError("ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy "
                                          "constraint: Member must not be null")
    if not session_name:
        raise AwsError("ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to "
                                          "satisfy constraint: Member must not be null")
    if not SESSION_NAME_RE.match(session_name):
        raise AwsError("ValidationError", "1 validation error detected: Value at 'roleSessionName' failed to satisfy "
                                          "constraint: Member must satisfy regular expression pattern: "
                                          "[\\w+=,.@-]* and have length between 2 and 64")
    duration = DEFAULT_DURATION
    if params.get("DurationSeconds"):
        try:
            duration = int(params["DurationSeconds"])
        except ValueError:
            raise AwsError("ValidationError", "DurationSeconds must be a whole number of seconds.") from None
        if not MIN_DURATION <= duration <= MAX_DURATION:
            raise AwsError("ValidationError", "1 validation error detected: Value at 'durationSeconds' failed to "
                                              "satisfy constraint: Member must have value between 900 and 43200")
    if params.get("Policy") or any(name.startswith("PolicyArns.") for name in params):
        # A session policy could only narrow the role; refusing it is clearer than ignoring it.
        raise AwsError("ValidationError", "Session policies are not supported by this platform.")
    if credential.kind != "base" or role_arn != identity.role_arn:
        raise AwsError("AccessDenied", f"User: {_caller_arn(endpoint, credential)} is not authorized to perform: "
                                       f"sts:AssumeRole on resource: {role_arn[:300]}", 403)
    expires = datetime.now(timezone.utc) + timedelta(seconds=duration)
    issued = endpoint.store.issue_role(session_name, expires)
    role_id = "AROA" + identity.account_id + identity.function_name.upper().replace("-", "").replace("_", "")[:8]
    response = _answer("AssumeRole", (
        "<AssumedRoleUser>"
        f"<AssumedRoleId>{escape(role_id)}:{escape(session_name)}</AssumedRoleId>"
        f"<Arn>{escape(identity.session_arn(session_name))}</Arn>"
        "</AssumedRoleUser>"
        "<Credentials>"
        f"<AccessKeyId>{issued.access_key}</AccessKeyId>"
        f"<SecretAccessKey>{escape(issued.secret_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(issued.session_token)}</SessionToken>"
        f"<Expiration>{_iso(issued.expires)}</Expiration>"
        "</Credentials>"))
    # The role's next call is nearly always the SDK's GetParameter of the secrets: start reading
    # them once this answer is out (runtime/aws/backend.py; the read is answered only to a
    # GetParameter that passes its own checks).
    response.then = getattr(endpoint.backend, "prefetch_secrets", None)
    return response
