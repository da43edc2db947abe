"""What storage refuses, and why, in words a person can act on.

Each error carries the S3 error code the in-run S3 endpoint answers with, so
the pages and that endpoint report the same refusal the same way.
"""


class StorageError(Exception):
    """A refused storage operation; `str(error)` is the message to show."""

    code = "InvalidRequest"
    status = 400

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class InvalidKey(StorageError):
    code = "InvalidArgument"


class ObjectNotFound(StorageError):
    code = "NoSuchKey"
    status = 404


class ObjectTooLarge(StorageError):
    code = "EntityTooLarge"


class QuotaExceeded(StorageError):
    # S3 has no quota error; the endpoint answers it as a refused upload.
    code = "QuotaExceeded"
    status = 403


class KeyClash(StorageError):
    """A file where a folder is (or the other way round): `a` next to `a/b`."""

    code = "KeyClash"
    status = 409


class IncompleteBody(StorageError):
    """Fewer (or more) bytes arrived than the upload announced."""

    code = "IncompleteBody"


class InvalidRange(StorageError):
    code = "InvalidRange"
    status = 416


class AlreadyExists(StorageError):
    code = "AlreadyExists"
    status = 409
