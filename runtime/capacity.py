"""Whether this machine has the disk to take runs: the worker stops claiming, and /healthz says why.

Each attempt writes its /tmp, and the embedded default keeps the database and
the broker on the same disk: a worker that claimed runs on a nearly full disk
would fail them and then the database. Under FUNCTIONS_MIN_FREE_DISK_MB free
on the disk of FUNCTIONS_CACHE_DIR (the attempts' temp directories) or of
DATA_DIR, it claims nothing until space is freed.
"""

import shutil
from pathlib import Path

from django.conf import settings


def disk_shortage():
    """None when there is room; else {path, freeMb, thresholdMb, message}."""
    threshold = settings.FUNCTIONS_MIN_FREE_DISK_MB
    for path in (Path(settings.FUNCTIONS_CACHE_DIR), Path(settings.DATA_DIR)):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free // (1024 * 1024)
        if free_mb < threshold:
            return {
                "path": str(path),
                "freeMb": free_mb,
                "thresholdMb": threshold,
                "message": (
                    f"{free_mb} MB free on the disk of {path}, under FUNCTIONS_MIN_FREE_DISK_MB={threshold}: "
                    "this machine's workers claim no runs until space is freed."
                ),
            }
    return None
