"""The attempt's credentials: made per attempt, kept only in the endpoint's memory, gone with it.

Two kinds:
  * base: the attempt's own credentials (AWS_ACCESS_KEY_ID... in the Function's
    environment). They may only call STS AssumeRole on the attempt's role.
  * role: what AssumeRole returns. They may read the Function's secrets (SSM)
    and use the organization's bucket (S3), until the attempt's deadline.

When an endpoint closes, its access key ids are remembered for a while in this
process (``RETIRED``, ids only, no secrets) so that a leaked key used again in
a later attempt on this worker is answered ``ExpiredToken`` rather than as an
unknown key; on another worker it is simply unknown.
"""

from __future__ import annotations

import base64
import collections
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

MAX_ROLE_SESSIONS = 256           # per attempt; the oldest session is dropped beyond it
RETIRED_KEEP_SECONDS = 24 * 3600
RETIRED_MAX = 100_000


# One read of the system's random source per value, encoded, rather than a secrets.choice()
# (a getrandom call) per character: AssumeRole and every attempt's start make these.
def _access_key() -> str:
    # AWS's shape: ASIA and 16 of [A-Z0-9] (base32's A-Z2-7: 80 random bits).
    return "ASIA" + base64.b32encode(secrets.token_bytes(10)).decode()


def _secret_key() -> str:
    # 40 of [A-Za-z0-9+/], as AWS's (base64 of 240 random bits).
    return base64.b64encode(secrets.token_bytes(30)).decode()


def _session_token() -> str:
    return secrets.token_urlsafe(96)


@dataclass(frozen=True)
class Credential:
    kind: str                  # "base" or "role"
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires: datetime          # aware UTC
    session_name: str = ""

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_SESSION_TOKEN": self.session_token}


def new_credential(kind: str, expires: datetime, session_name: str = "") -> Credential:
    return Credential(kind=kind, access_key=_access_key(), secret_key=_secret_key(),
                      session_token=_session_token(), expires=expires, session_name=session_name)


class _Retired:
    """Access key ids of closed endpoints (bounded in size and age)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys: collections.OrderedDict[str, float] = collections.OrderedDict()

    def add(self, keys) -> None:
        now = time.monotonic()
        with self.lock:
            for key in keys:
                self.keys[key] = now
                self.keys.move_to_end(key)
            while len(self.keys) > RETIRED_MAX:
                self.keys.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        with self.lock:
            when = self.keys.get(key)
            if when is None:
                return False
            if time.monotonic() - when > RETIRED_KEEP_SECONDS:
                del self.keys[key]
                return False
            return True


RETIRED = _Retired()


class CredentialStore:
    """The credentials one attempt's endpoint accepts."""

    def __init__(self, deadline: datetime):
        self.deadline = deadline
        self.lock = threading.Lock()
        self.base = new_credential("base", deadline)
        self.roles: collections.OrderedDict[str, Credential] = collections.OrderedDict()
        self.closed = False

    def issue_role(self, session_name: str, expires: datetime) -> Credential:
        credential = new_credential("role", min(expires, self.deadline), session_name)
        with self.lock:
            self.roles[credential.access_key] = credential
            while len(self.roles) > MAX_ROLE_SESSIONS:
                old, _ = self.roles.popitem(last=False)
                RETIRED.add([old])
        return credential

    def lookup(self, access_key: str, now: datetime | None = None) -> tuple[str, Credential | None]:
        """("ok", credential), ("expired", credential) or ("unknown" | "retired", None)."""
        now = now or datetime.now(timezone.utc)
        with self.lock:
            closed = self.closed
            credential = self.base if access_key == self.base.access_key else self.roles.get(access_key)
        if closed:
            return ("retired", None) if credential is not None or access_key in RETIRED else ("unknown", None)
        if credential is None:
            return ("retired", None) if access_key in RETIRED else ("unknown", None)
        if now >= credential.expires:
            return "expired", credential
        return "ok", credential

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            keys = [self.base.access_key, *self.roles]
        RETIRED.add(keys)
