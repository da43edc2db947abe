"""/healthz: is the database reachable, is the broker reachable, is there disk to run on? JSON, 503 when not."""

from django.db import connection
from django.http import JsonResponse

from runtime.capacity import disk_shortage

from .celery import app as celery_app


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        # A network broker is reached by connecting; the embedded one (config.broker) only
        # when its file is read, which its transport does here.
        check_reachable = getattr(conn.transport, "check_reachable", None)
        if check_reachable is not None:
            check_reachable()


def healthz(request):
    checks = {}
    for name, check in (("database", _database), ("broker", _broker)):
        try:
            check()
        except Exception as error:  # any failure is "down"; say which kind, never the URL (it holds credentials)
            checks[name] = {"status": "down", "error": type(error).__name__}
        else:
            checks[name] = {"status": "ok"}
    shortage = disk_shortage()
    checks["disk"] = {"status": "low", **shortage} if shortage else {"status": "ok"}
    healthy = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)
