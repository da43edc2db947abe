"""The worker's side of the endpoint: the Function's secrets and its organization's storage.

Every database operation goes through ``AttemptChannel.call`` and so runs on
the attempt's database thread (one connection per attempt, SQLite-safe); the
endpoint's handler threads never query themselves. Streaming a stored object's
bytes is storage I/O, not database work, and happens in the handler thread.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future

from storage import services as storage
from storage.errors import StorageError

from .errors import AwsError

# A prefetched read older than this is read again (a GetParameter long after its AssumeRole).
PREFETCH_FRESH_SECONDS = 5.0
# How long a prefetch waits for the database thread (which stops serving once the attempt ends).
PREFETCH_WAIT_SECONDS = 30.0


def _aws_error(error: StorageError, key: str | None = None) -> AwsError:
    extra = {}
    if error.code == "NoSuchKey":
        return AwsError("NoSuchKey", "The specified key does not exist.", 404, Key=key or "")
    if error.code == "InvalidArgument":
        extra = {"ArgumentName": "key"}
    return AwsError(error.code, error.message, error.status, **extra)


class AttemptBackend:
    """Secrets and storage for one attempt, with the Function recorded as the writer."""

    def __init__(self, *, run, channel):
        self.function = run.function
        self.organization = run.function.organization
        self.channel = channel
        # A database call may wait behind a large log batch or a folder
        # listing: wait as long as the attempt may run, not the channel's default.
        self.timeout = run.timeout_seconds + 60
        self._prefetch_lock = threading.Lock()
        self._prefetched: tuple[float, Future] | None = None

    def _call(self, work, key=None):
        try:
            return self.channel.call(work, timeout=self.timeout)
        except StorageError as error:
            raise _aws_error(error, key) from None

    # -- secrets ------------------------------------------------------------------------

    def _read_secrets(self):
        """On the database thread: (SSM value, when the secrets last changed, names without a value)."""
        from secrets_vault.services import secrets_read_for_run

        read = secrets_read_for_run(function=self.function)  # raises SecretDecryptionError
        return read.values, read.changed or self.function.created_at, read.missing

    def prefetch_secrets(self):
        """Read the secrets now, in the calling thread, for the next ``secrets()`` to take.

        The endpoint calls this once it has answered an AssumeRole of the Function's role
        (the SDK's secrets().load() reads the parameter right after): the read on the database
        thread then overlaps the Function making its SSM client instead of following its
        GetParameter. Nothing is answered from it until a GetParameter passes its own checks.
        """
        future = Future()
        with self._prefetch_lock:
            if self._prefetched is not None:
                return
            self._prefetched = (time.monotonic(), future)
        try:
            future.set_result(self.channel.call(self._read_secrets, timeout=PREFETCH_WAIT_SECONDS))
        except BaseException as error:
            future.set_exception(error)

    def secrets(self):
        """(the SSM value: a JSON object of name to value, or "null"; when the secrets last changed)."""
        from secrets_vault.services import SecretDecryptionError

        with self._prefetch_lock:
            prefetched, self._prefetched = self._prefetched, None  # taken once
        try:
            read = None
            if prefetched is not None and time.monotonic() - prefetched[0] < PREFETCH_FRESH_SECONDS:
                try:
                    read = prefetched[1].result(timeout=self.timeout)
                except SecretDecryptionError:
                    raise
                except Exception:
                    read = None  # the prefetch failed: read again, as without one
            values, changed, missing = read or self.channel.call(self._read_secrets, timeout=self.timeout)
        except SecretDecryptionError as error:
            self.channel.add_platform_line(f"Secrets could not be read: {error}")
            raise AwsError("InternalServerError", "The Function's secrets cannot be decrypted on this "
                                                  "platform; an administrator must set them again.", 500,
                           sender=False) from None
        if missing:
            self.channel.add_platform_line(
                "Secrets without a value were left out of SamsaraFunctionSecretsPath: " + ", ".join(missing))
        # Before the Function has them: a value changed since the claim read the secrets is masked too.
        self.channel.mask_also(values.values())
        return (json.dumps(values) if values else "null"), changed

    # -- storage ------------------------------------------------------------------------

    def validate_key(self, key):
        try:
            storage.validate_key(key)  # pure: no database
        except StorageError as error:
            raise _aws_error(error, key) from None

    def max_object_bytes(self):
        return storage.max_object_bytes()

    def check_room(self, key, size):
        """Refuse an upload over the quota before reading its body (object_put checks again)."""
        self._call(lambda: storage.quota_check(organization=self.organization, key=key, size=size), key)

    def head(self, key):
        return self._call(lambda: storage.object_get(organization=self.organization, key=key), key)

    def open(self, obj, start, end):
        try:
            return storage.object_open(obj, start, end)
        except StorageError as error:
            raise _aws_error(error, obj.key) from None

    def put(self, key, fileobj, size, content_type):
        # The bytes stream into storage here, in the request's thread; only
        # the checks and the commit run on the database thread, which must
        # keep writing logs and heartbeats through a long upload.
        try:
            return storage.object_put(
                organization=self.organization, key=key, fileobj_or_bytes=fileobj, size=size,
                content_type=content_type, writer_function=self.function, check_clash=False,
                run_query=lambda work: self.channel.call(work, timeout=self.timeout),
            )
        except StorageError as error:
            raise _aws_error(error, key) from None

    def copy(self, source_key, key, content_type):
        return self._call(lambda: storage.object_copy(
            organization=self.organization, source_key=source_key, destination_key=key,
            content_type=content_type, writer_function=self.function, check_clash=False,
        ), source_key)

    def delete(self, key):
        return self._call(lambda: storage.object_delete(organization=self.organization, key=key), key)

    def list(self, *, prefix, delimiter, start_after, limit):
        def page():
            listing = storage.object_list(organization=self.organization, prefix=prefix, delimiter=delimiter,
                                          start_after=start_after, limit=limit)
            return listing.objects, listing.common_prefixes, listing.is_truncated, listing.next_after

        return self._call(page)
