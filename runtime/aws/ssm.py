"""SSM over JSON 1.1: GetParameter of the Function's secrets path, with the assumed role only."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone

from .errors import AwsError
from .messages import Response

TARGET_PREFIX = "AmazonSSM."
# What AWS returns for a SecureString read without decryption: ciphertext,
# never the secrets. This placeholder is opaque and the same for every Function.
ENCRYPTED_PLACEHOLDER = base64.b64encode(b"samsara-functions: read with WithDecryption=True").decode()


def _parameter_arn(identity) -> str:
    path = identity.secrets_path
    return f"arn:aws:ssm:{identity.region}:{identity.account_id}:parameter{path if path.startswith('/') else '/' + path}"


def _denied(endpoint, credential, action, resource):
    caller = (endpoint.identity.session_arn(credential.session_name) if credential.kind == "role"
              else endpoint.identity.base_arn)
    return AwsError("AccessDeniedException", f"User: {caller} is not authorized to perform: ssm:{action} on "
                                             f"resource: {resource[:300]} because no identity-based policy allows "
                                             f"the ssm:{action} action", 400)


def handle(endpoint, request):
    target = request.headers.get("X-Amz-Target") or ""
    if request.method != "POST" or not target.startswith(TARGET_PREFIX):
        raise AwsError("UnknownOperationException", "Send SSM operations as POST with X-Amz-Target AmazonSSM.*.")
    action = target[len(TARGET_PREFIX):]
    try:
        params = json.loads(request.body or b"{}")
    except ValueError:
        raise AwsError("SerializationException", "The request body is not JSON.") from None
    if not isinstance(params, dict):
        raise AwsError("SerializationException", "The request body is not a JSON object.")
    identity = endpoint.identity
    if action != "GetParameter":
        raise _denied(endpoint, request.credential, action[:60], _parameter_arn(identity))
    name = params.get("Name")
    if not isinstance(name, str) or not name:
        raise AwsError("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy "
                                              "constraint: Member must not be null")
    selector = None
    if name.startswith("arn:") and name == _parameter_arn(identity):
        name = identity.secrets_path
    elif ":" in name and name.rsplit(":", 1)[0] == identity.secrets_path:
        name, selector = name.rsplit(":", 1)
    if request.credential.kind != "role" or name != identity.secrets_path:
        raise _denied(endpoint, request.credential, "GetParameter",
                      name if name.startswith("arn:") else f"arn:aws:ssm:{identity.region}:{identity.account_id}:"
                                                            f"parameter{name if name.startswith('/') else '/' + name}")
    if selector not in (None, "1"):
        raise AwsError("ParameterVersionNotFound", f"Systems Manager could not find version {selector[:20]} of "
                                                   f"{identity.secrets_path}. Verify the version and try again.")
    value, modified = endpoint.backend.secrets()
    if not params.get("WithDecryption"):
        value = ENCRYPTED_PLACEHOLDER
    modified = modified or datetime.now(timezone.utc)
    request_id = str(uuid.uuid4())
    body = json.dumps({"Parameter": {
        "Name": identity.secrets_path,
        "Type": "SecureString",
        "Value": value,
        "Version": 1,
        "LastModifiedDate": round(modified.timestamp(), 3),
        "ARN": _parameter_arn(identity),
        "DataType": "text",
    }}).encode()
    return Response(200, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id}, body)
