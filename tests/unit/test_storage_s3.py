"""storage.services on django-storages' S3 backend (STORAGE_BACKEND=s3), against moto's in-process S3.

The S3 backend takes other paths than local disk: s3transfer's multipart
upload of a non-seekable stream, ranged GETs instead of a full download, and
an aborted multipart upload when the source fails. Needs the `moto` package
(not in requirements.txt yet); skipped without it.
"""

import hashlib
import io

import pytest
from django.test import override_settings

from storage import services

moto = pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.django_db

BUCKET = "functions-storage-test"
S3_STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BUCKET, "region_name": "us-east-1", "access_key": "test", "secret_key": "test",
            "default_acl": None, "file_overwrite": True, "location": "prefix",
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


class FailsAfterThreeReads:
    def __init__(self):
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads > 3:
            raise ConnectionResetError("client went away")
        return b"A" * (size if size and size > 0 else 10)


@pytest.fixture
def s3():
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        with override_settings(STORAGES=S3_STORAGES):
            yield client


def bucket_keys(client):
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_objects_stream_into_s3_and_read_back_by_range(s3, org):
    assert services._s3_storage() is not None
    data = bytes(range(256)) * 40000  # about 10 MB: a multipart upload
    obj = services.object_put(organization=org, key="big.bin", fileobj_or_bytes=io.BytesIO(data), size=len(data))
    assert obj.etag == hashlib.md5(data).hexdigest()
    assert s3.head_object(Bucket=BUCKET, Key=f"prefix/{obj.blob_name}")["ContentLength"] == len(data)
    with services.object_open(obj, 1000, 1999) as reader:
        assert reader.read() == data[1000:2000]
    with services.object_open(obj) as reader:
        assert reader.read() == data


def test_an_interrupted_s3_upload_leaves_the_old_version_and_no_blob(s3, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        old = services.object_put(organization=org, key="state.json", fileobj_or_bytes=b'{"v": 1}')
    with pytest.raises(ConnectionResetError):
        services.object_put(organization=org, key="state.json", fileobj_or_bytes=FailsAfterThreeReads(), size=10**8)
    assert bucket_keys(s3) == [f"prefix/{old.blob_name}"]
    current = services.object_get(organization=org, key="state.json")
    with services.object_open(current) as reader:
        assert reader.read() == b'{"v": 1}'
    with django_capture_on_commit_callbacks(execute=True):
        replaced = services.object_put(organization=org, key="state.json", fileobj_or_bytes=b'{"v": 2}')
    assert bucket_keys(s3) == [f"prefix/{replaced.blob_name}"]
    with django_capture_on_commit_callbacks(execute=True):
        services.object_delete(organization=org, key="state.json")
    assert bucket_keys(s3) == []
