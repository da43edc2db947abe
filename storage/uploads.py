"""Stop an upload that cannot fit while it is still arriving, before Django spools all of it to disk.

Django writes uploaded files to temporary files before the view runs; without
this a 50 GB request would fill the web server's disk just to be refused.
The precise checks (which files replace which, the quota to the byte) happen
in services.upload_plan once the request is read; this handler only stops what
can never fit: one file over the per-file limit, or more bytes than the whole
free quota plus everything that could be replaced.
"""

from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from . import services
from .sizes import format_bytes


class UploadLimitHandler(FileUploadHandler):
    def __init__(self, request=None, *, organization):
        super().__init__(request)
        self.max_file_bytes = services.max_object_bytes()
        # Replacing can give back at most everything stored, so no upload can
        # ever need more than the whole quota.
        self.max_total_bytes = services.quota_bytes(organization=organization)
        self.file_bytes = 0
        self.total_bytes = 0
        self.refusal = None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.file_bytes = 0

    def receive_data_chunk(self, raw_data, start):
        self.file_bytes += len(raw_data)
        self.total_bytes += len(raw_data)
        if self.file_bytes > self.max_file_bytes:
            self.refusal = services.ObjectTooLarge(
                f"“{services.shown(self.file_name or '')}” is larger than {format_bytes(self.max_file_bytes)}, "
                "the most one file may be. Nothing was stored."
            )
        elif self.total_bytes > self.max_total_bytes:
            self.refusal = services.QuotaExceeded(
                f"These files are larger than the organization's whole storage quota "
                f"({format_bytes(self.max_total_bytes)}). Nothing was stored."
            )
        if self.refusal is not None:
            # Read and drop the rest of the request so the browser gets the answer.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None
