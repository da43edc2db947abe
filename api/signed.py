"""The platform's own signed, expiring addresses for code packages and storage files.

`uploadPutUrl`, `downloadGetUrl` and the storage endpoints' `uploadPut` /
`downloadGet` point here: `/api/signed/<token>`, where the token is a
django.core.signing value naming what may be done (kind), to what (the
organization and the object) and until when. A PUT sends the raw bytes, a GET
answers them; neither carries an Authorization header, and both go through
Django's storage API, so they work on local disk and S3 alike.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "api.signed-url"


class Kind:
    CODE_PUT = "code-put"  # the Function's next code package (deployed by POST .../deploy)
    CODE_GET = "code-get"  # a code version's zip
    FILE_PUT = "file-put"  # a storage file, created or replaced
    FILE_GET = "file-get"  # a storage file's bytes

    METHODS = {CODE_PUT: "PUT", CODE_GET: "GET", FILE_PUT: "PUT", FILE_GET: "GET"}


@dataclass(frozen=True)
class Grant:
    kind: str
    organization_id: int
    target: object  # a Function id, a CodeVersion id or a storage key
    expires_at: datetime
    # Who receives the credit for a write (History, Storage tab): the token's label.
    actor_label: str = ""


class SignedUrlRefused(Exception):
    """The address is forged, cut short, used with the wrong method, or expired; the message says which."""


def signed_url(request, *, kind, organization_id, target, actor_label="", seconds=None):
    """(absolute URL, expiry as an aware datetime) granting one `kind` of access to `target`."""
    seconds = seconds or settings.API_SIGNED_URL_SECONDS
    expires = int(time.time()) + seconds
    token = signing.dumps(
        {"k": kind, "o": organization_id, "t": target, "e": expires, "a": actor_label}, salt=_SALT, compress=True
    )
    url = request.build_absolute_uri(reverse("api-signed", args=[token]))
    return url, datetime.fromtimestamp(expires, UTC)


def signed_grant(token, *, method):
    """The Grant a signed address carries, for an HTTP `method`; SignedUrlRefused otherwise."""
    try:
        payload = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        raise SignedUrlRefused("This address is not valid (it was changed or cut short): ask the API for a new one.") from None
    if not isinstance(payload, dict) or payload.get("k") not in Kind.METHODS:
        raise SignedUrlRefused("This address is not valid: ask the API for a new one.")
    if Kind.METHODS[payload["k"]] != method:
        raise SignedUrlRefused(f"This address is for {Kind.METHODS[payload['k']]} requests, not {method}.")
    if payload["e"] < time.time():
        raise SignedUrlRefused(
            f"This address expired at {datetime.fromtimestamp(payload['e'], UTC):%Y-%m-%d %H:%M:%S} UTC: ask the API for a new one."
        )
    return Grant(
        kind=payload["k"], organization_id=payload["o"], target=payload["t"],
        expires_at=datetime.fromtimestamp(payload["e"], UTC), actor_label=payload.get("a", ""),
    )
