import io
import os
import time
from datetime import timedelta

from django.core.files.storage import default_storage

from functions import services
from functions.tasks import sweep_staged_uploads
from tests.factories import make_zip


def staged(org, text):
    info = services.staged_upload_save(organization=org, bundle=io.BytesIO(make_zip({"main.py": text})))
    return services.staged_upload_key(org, info.sha256)


def test_zips_of_abandoned_imports_are_swept_and_fresh_ones_kept(org):
    old, fresh = staged(org, "def handler(e, c):\n    return 1\n"), staged(org, "def handler(e, c):\n    return 2\n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(default_storage.path(old), (two_days_ago, two_days_ago))
    assert sweep_staged_uploads() >= 1  # other tests' abandoned zips may go too: they share the storage
    assert not default_storage.exists(old) and default_storage.exists(fresh)


def test_the_sweep_takes_an_age(org):
    # Never a cutoff in the future here: other test processes share this storage.
    key = staged(org, "def handler(e, c):\n    return 3\n")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(default_storage.path(key), (two_hours_ago, two_hours_ago))
    assert key not in services.staged_uploads_sweep()
    assert key in services.staged_uploads_sweep(older_than=timedelta(hours=1))
