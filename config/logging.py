"""Logging filters of the app (settings.LOGGING names them)."""

import logging


class OneLineForbidden(logging.Filter):
    """A 403 is logged as one line: the path, the user and the reason, without the traceback.

    Django logs a PermissionDenied with its full traceback, which buries the
    one fact an operator needs (who was refused what, and why) under twenty
    lines of frames from the access layer. The reason is the exception's
    message, the same text the 403 page shows, so it never holds a secret.
    """

    def filter(self, record):
        if getattr(record, "status_code", None) != 403:
            return True
        exc_info = record.exc_info
        reason = ""
        if exc_info and exc_info[1] is not None:
            reason = str(exc_info[1]).replace("\n", " ")[:300]
        request = getattr(record, "request", None)
        user = getattr(request, "user", None)
        who = getattr(user, "email", None) if getattr(user, "is_authenticated", False) else "anonymous"
        record.msg = f"{record.getMessage()} user={who}" + (f" reason={reason!r}" if reason else "")
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True
