"""The API's signed upload and download URLs on S3 storage (STORAGE_BACKEND=s3, moto's in-process S3)."""

import uuid

import pytest
from django.test import Client

from tests.factories import HELLO, make_zip
from tests.unit.test_storage_s3 import BUCKET, bucket_keys, s3  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def local(url):
    return url.split("testserver", 1)[1]


def test_code_packages_go_through_s3_from_upload_to_deploy_and_download(api, s3):  # noqa: F811
    package = make_zip({"main.py": HELLO + f"# {uuid.uuid4()}\n"})
    created = api.post("/functions", {"name": "hello", "config": {"handler": "main.handler"}}).json()["data"]
    assert Client().put(local(created["uploadPutUrl"]), package, content_type="application/zip").status_code == 200
    assert any(key.startswith("prefix/api-uploads/") for key in bucket_keys(s3))
    assert api.post("/functions/hello/deploy").status_code == 200
    keys = bucket_keys(s3)
    assert not any(key.startswith("prefix/api-uploads/") for key in keys)
    assert any(key.startswith("prefix/packages/") for key in keys)
    url = api.get("/functions/hello").json()["data"]["codePackage"]["downloadGetUrl"]
    assert b"".join(Client().get(local(url)).streaming_content) == package


def test_storage_files_go_through_s3(api, s3):  # noqa: F811
    upload = api.post("/functions-storage/files", {"name": "a/b.txt"}).json()["data"]["uploadPut"]["url"]
    assert Client().put(local(upload), b"on s3", content_type="text/plain").status_code == 200
    download = api.get("/functions-storage/files", name="a/b.txt").json()["data"]["downloadGet"]["url"]
    assert b"".join(Client().get(local(download)).streaming_content) == b"on s3"
    assert any(key.startswith("prefix/orgfiles/") for key in bucket_keys(s3))
