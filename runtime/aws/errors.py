"""Errors as the AWS services answer them, so boto3 raises the ClientError a Function expects."""

from __future__ import annotations

from xml.sax.saxutils import escape


class AwsError(Exception):
    """One error answer: the service's code, the HTTP status, a message, and extra XML elements."""

    def __init__(self, code: str, message: str, status: int = 400, *, sender: bool = True, headers=None, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        self.headers = dict(headers or {})
        self.extra = extra


def s3_error_body(error: AwsError, request_id: str, host_id: str) -> bytes:
    parts = [f"<Code>{escape(error.code)}</Code>", f"<Message>{escape(error.message)}</Message>"]
    for name, value in error.extra.items():
        parts.append(f"<{name}>{escape(str(value))}</{name}>")
    parts.append(f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode()


def sts_error_body(error: AwsError, request_id: str) -> bytes:
    kind = "Sender" if error.sender else "Receiver"
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def json_error_body(error: AwsError) -> bytes:
    import json

    return json.dumps({"__type": error.code, "message": error.message}).encode()
