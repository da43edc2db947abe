"""The in-run AWS endpoint spoken to by real boto3 (same botocore as the Functions' runtime), in-process.

Every test talks to the worker's real endpoint with the real backend
(database, storage, vault) through bootstrap's real relay; see
test_aws_harness.py. Runs inside the sandbox are in test_aws_runs.py.
"""

import base64
import hashlib
import http.client
import io
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import botocore.exceptions
import pytest

from runtime.aws import sigv4
from secrets_vault.services import secret_set
from storage import services as storage
from storage.models import StoredObject, WriterKind

from .aws_harness import Attempt


@pytest.fixture
def attempts(org):
    opened = []

    def open_(name="fn", organization=None, **kwargs):
        attempt = Attempt(organization or org, name, **kwargs)
        opened.append(attempt)
        return attempt

    yield open_
    for attempt in opened:
        attempt.close()


@pytest.fixture
def attempt(attempts):
    return attempts()


def error_of(call):
    """(code, HTTP status, message) of the ClientError that call() raises."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"].get("Message", "")


# --- STS -------------------------------------------------------------------------------------


def test_assume_role_gives_new_credentials_that_expire_with_the_attempt(attempt):
    answer = attempt.do(attempt.assume_role)
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
    assert credentials["AccessKeyId"] != attempt.base["aws_access_key_id"]
    assert credentials["SecretAccessKey"] != attempt.base["aws_secret_access_key"]
    assert len(credentials["SecretAccessKey"]) == 40
    now = datetime.now(timezone.utc)
    assert now < credentials["Expiration"] <= now + timedelta(seconds=61)  # the attempt's 60 s deadline
    account = f"{attempt.function.organization_id:012d}"
    assert answer["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{account}:assumed-role/fn/fn"


def test_duration_seconds_is_accepted_but_capped_to_the_attempt(attempt):
    answer = attempt.do(lambda: attempt.assume_role(DurationSeconds=43200))
    assert answer["Credentials"]["Expiration"] <= datetime.now(timezone.utc) + timedelta(seconds=61)
    code, status, message = error_of(lambda: attempt.do(lambda: attempt.assume_role(DurationSeconds=50000)))
    assert (code, status) == ("ValidationError", 400) and "between 900 and 43200" in message


def test_assume_role_of_another_role_is_denied(attempt):
    sts = attempt.client("sts")
    other = attempt.env["SamsaraFunctionExecRoleArn"].replace("/fn", "/other")
    code, status, message = error_of(lambda: attempt.do(lambda: sts.assume_role(RoleArn=other, RoleSessionName="x1")))
    assert (code, status) == ("AccessDenied", 403) and "sts:AssumeRole" in message


def test_role_credentials_cannot_assume_the_role_again(attempt):
    role = attempt.role()
    code, status, _ = error_of(lambda: attempt.do(lambda: attempt.assume_role(role)))
    assert (code, status) == ("AccessDenied", 403)


def test_a_bad_session_name_is_a_validation_error(attempt):
    sts = attempt.client("sts")
    role = attempt.env["SamsaraFunctionExecRoleArn"]
    code, status, _ = error_of(lambda: attempt.do(lambda: sts.assume_role(RoleArn=role, RoleSessionName="a b")))
    assert (code, status) == ("ValidationError", 400)


def test_get_caller_identity_names_the_attempt_and_the_role_session(attempt):
    base = attempt.do(lambda: attempt.client("sts").get_caller_identity())
    role_credentials = attempt.role()
    role = attempt.do(lambda: attempt.client("sts", role_credentials).get_caller_identity())
    assert base["Account"] == role["Account"] == f"{attempt.function.organization_id:012d}"
    assert role["Arn"].endswith(":assumed-role/fn/fn") and base["Arn"] != role["Arn"]


# --- SSM -------------------------------------------------------------------------------------


def test_get_parameter_returns_the_secrets_as_a_json_object(attempt):
    secret_set(function=attempt.function, name="API_KEY", value="k-123", actor=None)
    secret_set(function=attempt.function, name="OTHER", value="v2", actor=None)
    ssm = attempt.client("ssm", attempt.role())
    path = attempt.env["SamsaraFunctionSecretsPath"]
    parameter = attempt.do(lambda: ssm.get_parameter(Name=path, WithDecryption=True))["Parameter"]
    assert json.loads(parameter["Value"]) == {"API_KEY": "k-123", "OTHER": "v2"}
    assert parameter["Name"] == path and parameter["Type"] == "SecureString" and parameter["DataType"] == "text"
    assert parameter["Version"] == 1 and parameter["ARN"].endswith(f":parameter{path}")
    assert parameter["LastModifiedDate"] <= datetime.now(timezone.utc)


@pytest.fixture
def counted_reads(monkeypatch):
    """Every read of the secrets the endpoint makes, each answering {"read": its number} (as values)."""
    from runtime.aws import backend

    reads = []

    def read(self):
        reads.append(time.monotonic())
        return {"read": len(reads)}, datetime.now(timezone.utc), []

    monkeypatch.setattr(backend.AttemptBackend, "_read_secrets", read)
    return reads


def sdk_secrets(attempt, reads, *, gets=1, then=None):
    """What the SDK's secrets().load() does, waiting after AssumeRole until the endpoint's prefetch is read."""

    def work():
        role = attempt.assume_role()["Credentials"]
        deadline = time.monotonic() + 10
        while not reads and time.monotonic() < deadline:
            time.sleep(0.005)
        seen_before_get = len(reads)
        credentials = {"aws_access_key_id": role["AccessKeyId"], "aws_secret_access_key": role["SecretAccessKey"],
                       "aws_session_token": role["SessionToken"]}
        if then:
            then(credentials)
        ssm = attempt.client("ssm", credentials)
        path = attempt.env["SamsaraFunctionSecretsPath"]
        values = []
        for _ in range(gets):
            values.append(json.loads(ssm.get_parameter(Name=path, WithDecryption=True)["Parameter"]["Value"]))
            values.append(len(reads))
        return seen_before_get, values

    return attempt.do(work)


def test_assume_role_starts_the_secrets_read_that_the_next_get_parameter_answers_from(attempt, counted_reads):
    # The SDK's GetParameter follows its AssumeRole: the endpoint reads the secrets on the
    # database thread once AssumeRole is answered, and the first GetParameter takes that read
    # instead of making its own; a later one reads again.
    before_get, values = sdk_secrets(attempt, counted_reads, gets=2)
    assert before_get == 1
    assert values == [{"read": 1}, 1, {"read": 2}, 2]


def test_a_prefetched_read_goes_only_to_a_get_parameter_that_passes_its_checks(attempt, counted_reads):
    refused = []

    def others(role):
        path = attempt.env["SamsaraFunctionSecretsPath"]
        base = attempt.client("ssm")
        refused.append(error_of(lambda: base.get_parameter(Name=path, WithDecryption=True))[0])
        own = attempt.client("ssm", role)
        refused.append(error_of(lambda: own.get_parameter(Name=path + "-other", WithDecryption=True))[0])

    before_get, values = sdk_secrets(attempt, counted_reads, then=others)
    assert refused == ["AccessDeniedException", "AccessDeniedException"]
    assert before_get == 1 and values == [{"read": 1}, 1]


def test_a_stale_prefetched_read_is_read_again(attempt, counted_reads, monkeypatch):
    from runtime.aws import backend

    monkeypatch.setattr(backend, "PREFETCH_FRESH_SECONDS", 0.0)
    assert sdk_secrets(attempt, counted_reads) == (1, [{"read": 2}, 2])


def test_get_parameter_is_the_literal_null_without_secrets(attempt):
    ssm = attempt.client("ssm", attempt.role())
    value = attempt.do(lambda: ssm.get_parameter(Name=attempt.env["SamsaraFunctionSecretsPath"], WithDecryption=True))
    assert value["Parameter"]["Value"] == "null"


def test_without_decryption_the_value_is_not_the_secrets(attempt):
    secret_set(function=attempt.function, name="API_KEY", value="k-123", actor=None)
    ssm = attempt.client("ssm", attempt.role())
    value = attempt.do(lambda: ssm.get_parameter(Name=attempt.env["SamsaraFunctionSecretsPath"]))["Parameter"]["Value"]
    assert "k-123" not in value and "k-123" not in base64.b64decode(value).decode()


def test_get_parameter_of_another_path_is_denied(attempt):
    ssm = attempt.client("ssm", attempt.role())
    code, status, message = error_of(lambda: attempt.do(lambda: ssm.get_parameter(Name="/samsara/functions/1/x/secrets")))
    assert (code, status) == ("AccessDeniedException", 400) and "ssm:GetParameter" in message


def test_base_credentials_cannot_read_secrets_or_storage(attempt):
    ssm = attempt.client("ssm")
    path = attempt.env["SamsaraFunctionSecretsPath"]
    assert error_of(lambda: attempt.do(lambda: ssm.get_parameter(Name=path)))[:2] == ("AccessDeniedException", 400)
    s3 = attempt.client("s3")
    assert error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket)))[:2] == ("AccessDenied", 403)


def test_other_ssm_operations_are_denied(attempt):
    ssm = attempt.client("ssm", attempt.role())
    code, _, message = error_of(lambda: attempt.do(lambda: ssm.put_parameter(Name="/x", Value="y", Type="String")))
    assert code == "AccessDeniedException" and "ssm:PutParameter" in message


# --- S3: objects -----------------------------------------------------------------------------


@pytest.fixture
def s3(attempt):
    return attempt.client("s3", attempt.role())


def test_put_get_head_delete_and_the_storage_tab_sees_the_function_as_writer(attempt, s3):
    bucket = attempt.bucket

    def work():
        put = s3.put_object(Bucket=bucket, Key="reports/day 1.csv", Body=b"a,b\n1,2\n", ContentType="text/csv")
        get = s3.get_object(Bucket=bucket, Key="reports/day 1.csv")
        head = s3.head_object(Bucket=bucket, Key="reports/day 1.csv")
        return put, get, get["Body"].read(), head

    put, get, body, head = attempt.do(work)
    md5 = hashlib.md5(b"a,b\n1,2\n").hexdigest()
    assert put["ETag"] == get["ETag"] == head["ETag"] == f'"{md5}"'
    assert body == b"a,b\n1,2\n" and get["ContentLength"] == head["ContentLength"] == 8
    assert get["ContentType"] == "text/csv" and get["AcceptRanges"] == "bytes"
    assert abs(get["LastModified"] - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert get["LastModified"] == head["LastModified"]
    stored = StoredObject.objects.get(organization=attempt.function.organization, key="reports/day 1.csv")
    assert stored.writer_kind == WriterKind.FUNCTION and stored.written_by_function == attempt.function
    assert stored.writer_label == "fn"
    deleted = attempt.do(lambda: s3.delete_object(Bucket=bucket, Key="reports/day 1.csv"))
    again = attempt.do(lambda: s3.delete_object(Bucket=bucket, Key="reports/day 1.csv"))
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == again["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not StoredObject.objects.filter(key="reports/day 1.csv").exists()


def test_missing_keys_are_no_such_key_and_head_is_a_bare_404(attempt, s3):
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.get_object(Bucket=attempt.bucket, Key="nope")))
    assert (code, status) == ("NoSuchKey", 404)
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.head_object(Bucket=attempt.bucket, Key="nope")))
    assert (code, status) == ("404", 404)


def test_ranges_answer_206_with_content_range_and_416_when_unsatisfiable(attempt, s3):
    bucket = attempt.bucket
    attempt.do(lambda: s3.put_object(Bucket=bucket, Key="digits", Body=b"0123456789"))

    def get(range_):
        answer = s3.get_object(Bucket=bucket, Key="digits", Range=range_)
        return answer["ResponseMetadata"]["HTTPStatusCode"], answer.get("ContentRange"), answer["Body"].read()

    assert attempt.do(lambda: get("bytes=2-4")) == (206, "bytes 2-4/10", b"234")
    assert attempt.do(lambda: get("bytes=7-")) == (206, "bytes 7-9/10", b"789")
    assert attempt.do(lambda: get("bytes=-3")) == (206, "bytes 7-9/10", b"789")
    assert attempt.do(lambda: get("bytes=5-100")) == (206, "bytes 5-9/10", b"56789")
    code, status, _ = error_of(lambda: attempt.do(lambda: get("bytes=10-20")))
    assert (code, status) == ("InvalidRange", 416)


def test_conditional_gets(attempt, s3):
    bucket = attempt.bucket
    etag = attempt.do(lambda: s3.put_object(Bucket=bucket, Key="c", Body=b"x"))["ETag"]
    assert attempt.do(lambda: s3.get_object(Bucket=bucket, Key="c", IfMatch=etag))["Body"].read() == b"x"
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.get_object(Bucket=bucket, Key="c", IfMatch='"0"')))
    assert (code, status) == ("PreconditionFailed", 412)
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)))
    assert status == 304


def test_copy_within_the_bucket_and_refusals(attempt, s3):
    bucket = attempt.bucket
    attempt.do(lambda: s3.put_object(Bucket=bucket, Key="src.json", Body=b"{}", ContentType="application/json"))
    copied = attempt.do(lambda: s3.copy_object(Bucket=bucket, Key="dst.json", CopySource={"Bucket": bucket, "Key": "src.json"}))
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"{}").hexdigest()}"'
    dst = StoredObject.objects.get(key="dst.json")
    assert dst.content_type == "application/json" and dst.written_by_function == attempt.function
    other = "samsara-functions-storage-424242"
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.copy_object(
        Bucket=bucket, Key="x", CopySource={"Bucket": other, "Key": "src.json"})))
    assert (code, status) == ("AccessDenied", 403)
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.copy_object(
        Bucket=bucket, Key="src.json", CopySource={"Bucket": bucket, "Key": "src.json"})))
    assert (code, status) == ("InvalidRequest", 400)
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.copy_object(
        Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})))
    assert (code, status) == ("NoSuchKey", 404)


def test_upload_and_download_helpers_work(attempt, s3):
    data = bytes(range(256)) * 4000

    def work():
        s3.upload_fileobj(io.BytesIO(data), attempt.bucket, "blob.bin")
        out = io.BytesIO()
        s3.download_fileobj(attempt.bucket, "blob.bin", out)
        return out.getvalue()

    assert attempt.do(work) == data


# --- S3: listing ------------------------------------------------------------------------------


def put_all(attempt, s3, keys):
    def work():
        for key in keys:
            s3.put_object(Bucket=attempt.bucket, Key=key, Body=key.encode())

    attempt.do(work)


def test_list_with_prefix_delimiter_and_common_prefixes(attempt, s3):
    put_all(attempt, s3, ["a/1", "a/2", "a/b/3", "a/c/4", "b/5", "top"])
    answer = attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket, Prefix="a/", Delimiter="/"))
    assert [o["Key"] for o in answer["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in answer["CommonPrefixes"]] == ["a/b/", "a/c/"]
    assert answer["KeyCount"] == 4 and answer["IsTruncated"] is False and answer["Name"] == attempt.bucket
    assert answer["Contents"][0]["Size"] == 3 and answer["Contents"][0]["StorageClass"] == "STANDARD"
    top = attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket, Delimiter="/"))
    assert [o["Key"] for o in top["Contents"]] == ["top"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]


def test_list_pages_with_max_keys_continuation_and_start_after(attempt, s3):
    keys = [f"k{i:02d}" for i in range(7)]
    put_all(attempt, s3, keys)
    bucket = attempt.bucket

    def pages():
        seen, token = [], None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, **extra)
            seen.append(([o["Key"] for o in page.get("Contents", [])], page["IsTruncated"], page["KeyCount"]))
            if not page["IsTruncated"]:
                return seen
            token = page["NextContinuationToken"]

    assert attempt.do(pages) == [(keys[0:3], True, 3), (keys[3:6], True, 3), (keys[6:], False, 1)]
    after = attempt.do(lambda: s3.list_objects_v2(Bucket=bucket, StartAfter="k04"))
    assert [o["Key"] for o in after["Contents"]] == ["k05", "k06"] and after["StartAfter"] == "k04"
    none = attempt.do(lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys=0))
    assert none["KeyCount"] == 0 and "Contents" not in none
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket=bucket, ContinuationToken="garbage")))
    assert (code, status) == ("InvalidArgument", 400)


def test_the_paginator_walks_more_than_a_thousand_keys(attempt, s3):
    organization = attempt.function.organization
    # Listing reads only metadata rows: made in bulk here, without blobs, to keep the test fast.
    now = datetime.now(timezone.utc)
    StoredObject.objects.bulk_create([
        StoredObject(organization=organization, key=f"many/{i:05d}", folder="many/", size=0, etag="0" * 32,
                     content_type="text/plain", last_modified=now, blob_name=f"none/{i}")
        for i in range(1203)
    ])
    paginator = s3.get_paginator("list_objects_v2")
    pages = attempt.do(lambda: [[o["Key"] for o in page.get("Contents", [])]
                                for page in paginator.paginate(Bucket=attempt.bucket, Prefix="many/")])
    assert [len(page) for page in pages] == [1000, 203]
    assert sum(pages, []) == [f"many/{i:05d}" for i in range(1203)]


def test_keys_with_special_characters_survive_url_encoding(attempt, s3):
    keys = ["plus+sign", "space here", "percent%25", "ünïcode/ключ", "amp&lt<gt>", "q?x=1#h"]
    put_all(attempt, s3, keys)
    listed = attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket))
    assert [o["Key"] for o in listed["Contents"]] == sorted(keys, key=lambda k: k.encode())
    assert attempt.do(lambda: s3.get_object(Bucket=attempt.bucket, Key="q?x=1#h"))["Body"].read() == b"q?x=1#h"


def test_delete_objects_deletes_several_and_reports_bad_keys(attempt, s3):
    put_all(attempt, s3, ["d/1", "d/2", "keep"])
    answer = attempt.do(lambda: s3.delete_objects(Bucket=attempt.bucket, Delete={"Objects": [
        {"Key": "d/1"}, {"Key": "d/2"}, {"Key": "never-there"}, {"Key": "../up"}]}))
    assert [d["Key"] for d in answer["Deleted"]] == ["d/1", "d/2", "never-there"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("../up", "InvalidArgument")]
    assert list(StoredObject.objects.values_list("key", flat=True)) == ["keep"]


def test_list_objects_v1_works_too(attempt, s3):
    put_all(attempt, s3, ["x1", "x2", "x3"])
    page = attempt.do(lambda: s3.list_objects(Bucket=attempt.bucket, MaxKeys=2))
    assert [o["Key"] for o in page["Contents"]] == ["x1", "x2"] and page["IsTruncated"] is True


# --- S3: refusals -------------------------------------------------------------------------------


def test_another_organizations_bucket_is_denied_and_an_unknown_one_does_not_exist(attempt, s3, other_org):
    theirs = f"samsara-functions-storage-{other_org.id}"
    storage.object_put(organization=other_org, key="theirs.txt", fileobj_or_bytes=b"private")
    for call in (lambda: s3.list_objects_v2(Bucket=theirs), lambda: s3.get_object(Bucket=theirs, Key="theirs.txt"),
                 lambda: s3.put_object(Bucket=theirs, Key="mine.txt", Body=b"x")):
        assert error_of(lambda: attempt.do(call))[:2] == ("AccessDenied", 403)
    # A bucket of the platform's form that belongs to nobody answers the same (no existence leak).
    assert error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket="samsara-functions-storage-99999999")))[:2] == (
        "AccessDenied", 403)
    assert error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket="some-other-bucket")))[:2] == ("NoSuchBucket", 404)
    assert not StoredObject.objects.filter(key="mine.txt").exists()


@pytest.mark.parametrize("key, code", [
    ("../escape", "InvalidArgument"),
    ("a/../../b", "InvalidArgument"),
    ("/absolute", "InvalidArgument"),
    ("back\\slash", "InvalidArgument"),
    ("x" * 1025, "KeyTooLongError"),
])
def test_keys_that_escape_or_break_the_rules_are_refused(attempt, s3, key, code):
    error = error_of(lambda: attempt.do(lambda: s3.put_object(Bucket=attempt.bucket, Key=key, Body=b"x")))
    assert error[:2] == (code, 400)
    assert not StoredObject.objects.exists()


def test_quota_and_size_limits_are_s3_errors(attempt, s3, settings):
    settings.FUNCTIONS_STORAGE_QUOTA_BYTES = 100
    code, status, message = error_of(lambda: attempt.do(lambda: s3.put_object(Bucket=attempt.bucket, Key="big", Body=b"x" * 101)))
    assert (code, status) == ("QuotaExceeded", 403) and "quota" in message
    settings.FUNCTIONS_STORAGE_QUOTA_BYTES = 10_000
    settings.FUNCTIONS_STORAGE_MAX_OBJECT_BYTES = 50
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.put_object(Bucket=attempt.bucket, Key="big", Body=b"x" * 51)))
    assert (code, status) == ("EntityTooLarge", 400)
    assert not StoredObject.objects.exists()


def test_a_body_that_does_not_match_its_checksum_is_refused(attempt, s3):
    wrong_crc = base64.b64encode(b"\0\0\0\0").decode()
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.put_object(
        Bucket=attempt.bucket, Key="k", Body=b"data", ChecksumCRC32=wrong_crc)))
    assert (code, status) == ("BadDigest", 400)
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    code, status, _ = error_of(lambda: attempt.do(lambda: s3.put_object(
        Bucket=attempt.bucket, Key="k", Body=b"data", ContentMD5=wrong_md5)))
    assert (code, status) == ("BadDigest", 400)
    assert not StoredObject.objects.exists()


def test_upload_fileobj_past_the_multipart_threshold_stores_one_object(attempt, s3):
    data = bytes(range(251)) * (12 * 1024 * 1024 // 251)  # 12 MB: s3transfer sends two parts

    def work():
        s3.upload_fileobj(io.BytesIO(data), attempt.bucket, "big/report.bin")
        return s3.head_object(Bucket=attempt.bucket, Key="big/report.bin")

    head = attempt.do(work)
    assert head["ContentLength"] == len(data) and head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    stored = StoredObject.objects.get(key="big/report.bin")
    assert stored.written_by_function == attempt.function
    with storage.object_open(stored) as reader:
        assert reader.read() == data


def test_multipart_uploads_refuse_bad_part_lists_and_can_be_aborted(attempt, s3):
    bucket = attempt.bucket
    upload = attempt.do(lambda: s3.create_multipart_upload(Bucket=bucket, Key="m"))["UploadId"]
    first = attempt.do(lambda: s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"small"))
    second = attempt.do(lambda: s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=2, Body=b"tail"))

    def complete(parts):
        return s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={"Parts": parts})

    both = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    assert error_of(lambda: attempt.do(lambda: complete(both)))[:2] == ("EntityTooSmall", 400)
    assert error_of(lambda: attempt.do(lambda: complete([{"PartNumber": 1, "ETag": '"0"'}])))[:2] == ("InvalidPart", 400)
    assert error_of(lambda: attempt.do(lambda: complete(both[::-1])))[:2] == ("InvalidPartOrder", 400)
    assert error_of(lambda: attempt.do(lambda: s3.upload_part(
        Bucket=bucket, Key="other", UploadId=upload, PartNumber=1, Body=b"x")))[:2] == ("NoSuchUpload", 404)
    assert attempt.do(lambda: complete([{"PartNumber": 1, "ETag": first["ETag"]}]))["ETag"] == (
        f'"{hashlib.md5(b"small").hexdigest()}"')
    assert StoredObject.objects.get(key="m").size == 5
    again = attempt.do(lambda: s3.create_multipart_upload(Bucket=bucket, Key="n"))["UploadId"]
    attempt.do(lambda: s3.abort_multipart_upload(Bucket=bucket, Key="n", UploadId=again))
    assert error_of(lambda: attempt.do(lambda: s3.upload_part(
        Bucket=bucket, Key="n", UploadId=again, PartNumber=1, Body=b"x")))[:2] == ("NoSuchUpload", 404)
    assert not StoredObject.objects.filter(key="n").exists()


# --- signatures and credentials ------------------------------------------------------------------


def test_a_forged_signature_is_refused_by_every_service(attempt):
    role = attempt.role()
    forged = dict(role, aws_secret_access_key="x" * 40)
    s3 = attempt.client("s3", forged)
    assert error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket)))[:2] == ("SignatureDoesNotMatch", 403)
    assert error_of(lambda: attempt.do(lambda: s3.put_object(Bucket=attempt.bucket, Key="k", Body=b"x")))[:2] == (
        "SignatureDoesNotMatch", 403)
    ssm = attempt.client("ssm", forged)
    path = attempt.env["SamsaraFunctionSecretsPath"]
    assert error_of(lambda: attempt.do(lambda: ssm.get_parameter(Name=path)))[:2] == ("InvalidSignatureException", 400)
    base_forged = dict(attempt.base, aws_secret_access_key="y" * 40)
    assert error_of(lambda: attempt.do(lambda: attempt.assume_role(base_forged)))[:2] == ("SignatureDoesNotMatch", 403)
    assert not StoredObject.objects.exists()


def test_unknown_keys_and_wrong_session_tokens_are_refused(attempt):
    role = attempt.role()
    unknown = dict(role, aws_access_key_id="ASIA" + "Z" * 16)
    s3 = attempt.client("s3", unknown)
    assert error_of(lambda: attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket)))[:2] == ("InvalidAccessKeyId", 403)
    assert error_of(lambda: attempt.do(lambda: attempt.assume_role(dict(attempt.base, aws_access_key_id="ASIA" + "Q" * 16))))[:2] == (
        "InvalidClientTokenId", 403)
    wrong_token = attempt.client("s3", dict(role, aws_session_token="not-the-token"))
    assert error_of(lambda: attempt.do(lambda: wrong_token.list_objects_v2(Bucket=attempt.bucket)))[:2] == ("InvalidToken", 400)
    no_token = attempt.client("s3", {k: v for k, v in role.items() if k != "aws_session_token"})
    assert error_of(lambda: attempt.do(lambda: no_token.list_objects_v2(Bucket=attempt.bucket)))[:2] == ("InvalidToken", 400)


def test_another_attempts_credentials_are_unknown_here_and_expired_once_it_ended(attempts):
    first, second = attempts("first"), attempts("second")
    assert first.bucket == second.bucket  # same organization, same bucket
    first_role = first.role()
    s3_there = second.client("s3", first_role)
    assert error_of(lambda: second.do(lambda: s3_there.list_objects_v2(Bucket=second.bucket)))[:2] == (
        "InvalidAccessKeyId", 403)
    first.close()
    assert error_of(lambda: second.do(lambda: s3_there.list_objects_v2(Bucket=second.bucket)))[:2] == ("ExpiredToken", 400)
    assert error_of(lambda: second.do(lambda: second.assume_role(first.base)))[:2] == ("ExpiredToken", 403)


def test_region_scope_must_be_the_organizations(attempt):
    role = attempt.role()
    sts = attempt.client("sts", region="eu-west-1")
    code, status, message = error_of(lambda: attempt.do(lambda: sts.assume_role(
        RoleArn=attempt.env["SamsaraFunctionExecRoleArn"], RoleSessionName="fn")))
    assert (code, status) == ("SignatureDoesNotMatch", 403) and "eu-west-1" in message
    ssm = attempt.client("ssm", role, region="ca-central-1")
    assert error_of(lambda: attempt.do(lambda: ssm.get_parameter(Name=attempt.env["SamsaraFunctionSecretsPath"])))[:2] == (
        "InvalidSignatureException", 400)


def raw_request(attempt, method, path, headers=None, body=b""):
    host, port = attempt.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    answer = response.status, response.read()
    connection.close()
    return answer


def sign(attempt, credentials, method, path, body, *, when=None, payload_hash=None, service="s3"):
    """Headers of a request signed by the spec (used only where boto3 cannot make the request wanted)."""
    when = when or datetime.now(timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    headers = {"Host": attempt.url.removeprefix("http://"), "X-Amz-Date": amz_date,
               "x-amz-content-sha256": payload_hash or hashlib.sha256(body).hexdigest(),
               "X-Amz-Security-Token": credentials["aws_session_token"]}
    scope = sigv4.Scope(amz_date[:8], attempt.env["AWS_REGION"], service)
    names = tuple(sorted(h.lower() for h in headers))
    claim = sigv4.Claim(credentials["aws_access_key_id"], scope, names, "0" * 64, amz_date)
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical = sigv4.canonical_request(method, path, [], lowered, claim, lowered["x-amz-content-sha256"])
    signature = sigv4.signature(sigv4.signing_key(credentials["aws_secret_access_key"], scope),
                                sigv4.string_to_sign(claim, canonical))
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials['aws_access_key_id']}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return headers


def test_a_request_dated_more_than_15_minutes_away_is_refused(attempt):
    role = attempt.role()
    path = f"/{attempt.bucket}?list-type=2"
    headers = sign(attempt, role, "GET", f"/{attempt.bucket}", b"", when=datetime.now(timezone.utc) - timedelta(minutes=16))
    status, body = attempt.do(lambda: raw_request(attempt, "GET", f"/{attempt.bucket}", headers))
    assert status == 403 and b"<Code>RequestTimeTooSkewed</Code>" in body
    fresh = sign(attempt, role, "GET", f"/{attempt.bucket}", b"")
    assert attempt.do(lambda: raw_request(attempt, "GET", f"/{attempt.bucket}", fresh))[0] == 200
    assert path  # the query-less form is what was signed


def test_a_body_that_does_not_match_the_signed_hash_is_refused(attempt):
    role = attempt.role()
    path = f"/{attempt.bucket}/tampered"
    headers = sign(attempt, role, "PUT", path, b"signed body")
    status, body = attempt.do(lambda: raw_request(attempt, "PUT", path, headers, b"other body!"))
    assert status == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in body
    assert not StoredObject.objects.exists()


def test_an_unsigned_request_is_denied(attempt):
    status, body = attempt.do(lambda: raw_request(attempt, "GET", f"/{attempt.bucket}?list-type=2"))
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_aws_chunked_uploads_with_a_trailing_checksum_are_decoded_and_verified(attempt):
    from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

    role = attempt.role()
    path = f"/{attempt.bucket}/chunked"
    data = b"chunk me " * 10000

    def encoded(payload):
        return AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32",
                                 chunk_size=16384).read()

    def put(wire):
        headers = sign(attempt, role, "PUT", path, b"", payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        headers.update({"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                        "x-amz-trailer": "x-amz-checksum-crc32", "Content-Length": str(len(wire))})
        return raw_request(attempt, "PUT", path, headers, wire)

    assert attempt.do(lambda: put(encoded(data)))[0] == 200
    assert StoredObject.objects.get(key="chunked").size == len(data)
    with storage.object_open(StoredObject.objects.get(key="chunked")) as reader:
        assert reader.read() == data
    corrupted = encoded(data).replace(b"chunk me", b"chunk ME", 1)
    status, body = attempt.do(lambda: put(corrupted))
    assert status == 400 and b"<Code>BadDigest</Code>" in body


def test_presigned_urls_work_until_they_expire_and_not_when_tampered(attempt, s3):
    attempt.do(lambda: s3.put_object(Bucket=attempt.bucket, Key="shared.txt", Body=b"presigned"))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": attempt.bucket, "Key": "shared.txt"}, ExpiresIn=60)
    assert attempt.do(lambda: urllib.request.urlopen(url, timeout=10).read()) == b"presigned"

    def status_of(address):
        try:
            urllib.request.urlopen(address, timeout=10)
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        return 200, b""

    status, body = attempt.do(lambda: status_of(url.replace("shared.txt", "other.txt")))
    assert status == 403 and b"SignatureDoesNotMatch" in body
    short = s3.generate_presigned_url("get_object", Params={"Bucket": attempt.bucket, "Key": "shared.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    status, body = attempt.do(lambda: status_of(short))
    assert status == 403 and b"Request has expired" in body


def test_a_closed_endpoint_cuts_connections_and_forgets_its_credentials(attempt):
    role = attempt.role()
    s3 = attempt.client("s3", role)
    attempt.do(lambda: s3.list_objects_v2(Bucket=attempt.bucket))
    attempt.close()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        s3.list_objects_v2(Bucket=attempt.bucket)
    assert not attempt.access.socket_path.exists()
