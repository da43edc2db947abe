"""object_put's database steps can run elsewhere while the bytes stream in the caller's thread."""

import io
import threading

import pytest

from storage import services


class WatchedReader(io.BytesIO):
    """Records the threads that read the body."""

    def __init__(self, data):
        super().__init__(data)
        self.threads = set()

    def read(self, *args):
        self.threads.add(threading.get_ident())
        return super().read(*args)


def test_the_checks_and_the_commit_go_through_run_query_and_the_bytes_do_not(org):
    steps = []

    def run_query(work):
        steps.append(threading.get_ident())
        return work()

    body = WatchedReader(b"x" * 300_000)
    stored = services.object_put(
        organization=org, key="big/file.bin", fileobj_or_bytes=body, size=300_000, run_query=run_query
    )
    assert len(steps) == 2  # the checks before, the commit after
    assert body.threads == {threading.get_ident()}
    assert stored.size == 300_000 and services.object_get(organization=org, key="big/file.bin").etag == stored.etag


def test_a_refusal_in_the_checks_stores_nothing(org, settings):
    settings.FUNCTIONS_STORAGE_QUOTA_BYTES = 10
    body = WatchedReader(b"y" * 100)
    with pytest.raises(services.QuotaExceeded):
        services.object_put(organization=org, key="k", fileobj_or_bytes=body, size=100, run_query=lambda work: work())
    assert not body.threads and services.usage_bytes(organization=org) == 0
