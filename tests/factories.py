"""Builders for test data that many test files need: zips, Functions with code, runs and their log lines,
schedule entries, a worker's run on a thread."""

import hashlib
import io
import threading
import zipfile

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from functions.models import CodeVersion, Function, Run, RunStatus
from functions.services import package_key
from logs.models import LogEntry

HELLO = """
def handler(event, context):
    print("hello", event.get("name", "world"))
    return {"ok": True}
"""


def make_zip(files):
    """A zip (bytes) of {path: text or bytes}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


def zip_of_zeros(files, name, megabytes, *, declared_size=None):
    """A deflated zip (rewound BytesIO) of `files` plus `name` holding that many MB of zeros: tiny on the wire,
    huge unpacked. `declared_size` writes a smaller size into its table of contents (a bomb that lies)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
        with archive.open(name, "w") as member:
            zeros = b"\0" * (1024 * 1024)
            for _ in range(megabytes):
                member.write(zeros)
        if declared_size is not None:
            archive.getinfo(name).file_size = declared_size  # written to the central directory on close
    buffer.seek(0)
    return buffer


def make_function(organization, name="hello", *, files=None, handler="main.handler", params=None, user=None, **fields):
    """A Function with one deployed code version, stored the way the services store it."""
    data = make_zip(files or {"main.py": HELLO})
    sha = hashlib.sha256(data).hexdigest()
    key = package_key(organization, sha)
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    function = Function.objects.create(
        organization=organization,
        name=name,
        handler=handler,
        event_parameters=[{"name": k, "value": v} for k, v in (params or {}).items()],
        created_by=user,
        **fields,
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
    version = CodeVersion.objects.create(
        function=function, number=1, sha256=sha, size=len(data),
        uncompressed_size=sum(i.file_size for i in infos), file_count=len(infos),
        storage_key=key, handler=handler, uploaded_by=user,
    )
    function.deployed_version = version
    function.save(update_fields=["deployed_version"])
    return function


def make_run(function, **fields):
    """A finished (succeeded) manual run of the Function's deployed version; `fields` override any column."""
    return Run.objects.create(**{
        "organization": function.organization, "function": function, "code_version": function.deployed_version,
        "trigger": "manual", "timeout_seconds": 900, "memory_mb": 1769, "status": RunStatus.SUCCEEDED, **fields,
    })


def add_log_lines(run, *lines, attempt=1, stream="stdout"):
    """lines: (timestamp, message) pairs written as the run's; returns the created entries in order."""
    return LogEntry.objects.bulk_create([
        LogEntry(organization_id=run.organization_id, function_id=run.function_id, run=run, attempt=attempt,
                 timestamp=ts, stream=stream, message=message)
        for ts, message in lines
    ])


def entry_at(moment, tz):
    """A Samsara entry (every day) at the wall-clock second of ``moment`` in ``tz``."""
    local = moment.astimezone(tz)
    ms = ((local.hour * 60 + local.minute) * 60 + local.second) * 1000
    return {"daysOfWeek": [True] * 7, "timeSinceMidnightMs": ms}


class ExecuteOnThread:
    """run_execute on a thread of the test's process, as a worker runs it beside the web server, for a
    page to follow the run live. ``join()`` raises what the worker's part raised, and checks the run was
    recorded: a test then fails on the cause, not ten seconds later on a page still saying "Running"."""

    def __init__(self, run):
        from runtime.services import run_execute

        self.run, self.error = run, None

        def execute():
            try:
                run_execute(run_id=run.pk)
            except BaseException as error:
                self.error = error

        self.thread = threading.Thread(target=execute, name=f"test-worker-{run.pk}", daemon=True)
        self.thread.start()

    def join(self, timeout=120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"run_execute still running after {timeout} s"
        if self.error is not None:
            raise AssertionError("run_execute raised on the worker's thread") from self.error
        self.run.refresh_from_db()
        assert self.run.is_finished, f"run_execute returned with the run {self.run.status}"
