"""One endpoint per attempt, opened by the worker around ``sandbox.execute``.

    with attempt_endpoint(run=run, channel=channel, env=env, timeout_s=...) as access:
        sandbox.execute(Invocation(..., aws=access), ...)

The endpoint listens on a Unix socket in a private directory of its own
(0700, made fresh per attempt); the sandbox binds that directory at /run/aws
and bootstrap relays 127.0.0.1:<port> inside the sandbox to it. When the
block ends the endpoint closes: its credentials die, open connections are cut
and the directory is removed.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runtime.sandbox import AwsAccess

from .backend import AttemptBackend
from .server import AwsEndpoint, Identity

SOCKET_NAME = "endpoint.sock"
# A Unix socket path is at most 107 bytes: keep the directory short, under
# the system's temporary directory rather than a possibly deep cache path.
SOCKET_DIR_PREFIX = "sfn-aws-"


@contextlib.contextmanager
def attempt_endpoint(*, run, channel, env, timeout_s, directory=None):
    """``directory``: a warm execution environment's socket directory (runtime/warm.py), already
    bound at /run/aws; the attempt's socket gets a fresh name there and is removed afterwards."""
    deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_s)
    endpoint = AwsEndpoint(Identity.from_environment(env), AttemptBackend(run=run, channel=channel), deadline)
    own = directory is None
    directory = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)) if own else Path(directory)
    socket_path = directory / (SOCKET_NAME if own else f"{secrets.token_hex(8)}.sock")
    try:
        endpoint.start(socket_path)
        yield AwsAccess(socket_path=socket_path, credentials=endpoint.base_credentials.environment())
    finally:
        endpoint.close()
        if own:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            socket_path.unlink(missing_ok=True)
