"""SigV4 verification (runtime/aws/sigv4.py) against botocore's own signers and AWS's published example."""

from __future__ import annotations

import email.message
import hashlib
import io
from datetime import datetime, timedelta, timezone

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from runtime.aws import sigv4

CREDENTIALS = Credentials("ASIAEXAMPLEEXAMPLE00", "secret/Key+example0000000000000000000000", "session-token")


def headers_of(request: AWSRequest) -> email.message.Message:
    """The headers as the endpoint's http.server sees them (case-insensitive, repeatable)."""
    message = email.message.Message()
    for name, value in request.headers.items():
        message[name] = value if isinstance(value, str) else value.decode()
    if "Host" not in message:
        message["Host"] = request.url.split("://", 1)[1].split("/", 1)[0]  # as http.client sends it
    return message


def split(url: str):
    rest = url.split("://", 1)[1]
    path_query = "/" + rest.partition("/")[2]
    path, _, query = path_query.partition("?")
    return path, sigv4.split_query(query)


def check(request: AWSRequest, service: str, body: bytes = b"", secret: str = CREDENTIALS.secret_key):
    headers = headers_of(request)
    path, query = split(request.url)
    claim = sigv4.parse_presigned(query) or sigv4.parse_authorization(headers)
    declared = sigv4.payload_hash_claim(headers, service, claim.presigned)
    payload_hash = declared or hashlib.sha256(body).hexdigest()
    sigv4.check_time(claim, datetime.now(timezone.utc))
    sigv4.verify(claim, secret, request.method, path, query, headers, payload_hash)
    return claim


def sts_request(body=b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=fn"):
    request = AWSRequest("POST", "http://127.0.0.1:9000/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(CREDENTIALS, "sts", "eu-west-1").add_auth(request)
    return request


def test_it_accepts_what_botocore_signs_for_sts():
    claim = check(sts_request(), "sts", sts_request().body)
    assert (claim.access_key, claim.scope.region, claim.scope.service) == (CREDENTIALS.access_key, "eu-west-1", "sts")
    assert claim.security_token == "session-token"


def test_a_changed_body_or_a_wrong_secret_does_not_verify():
    request = sts_request()
    with pytest.raises(sigv4.SigV4Error) as caught:
        check(request, "sts", request.body.replace(b"fn", b"xx"))
    assert caught.value.kind == "mismatch"
    with pytest.raises(sigv4.SigV4Error) as caught:
        check(request, "sts", request.body, secret="another secret")
    assert caught.value.kind == "mismatch"


@pytest.mark.parametrize("path, query", [
    ("/bucket/plain.txt", ""),
    ("/bucket/sp%20ace/%C3%BC%2Bplus%25", ""),
    ("/bucket", "list-type=2&prefix=a%2Fb%20c&delimiter=%2F&encoding-type=url&start-after=x%2By"),
])
def test_it_accepts_what_botocore_signs_for_s3(path, query):
    url = f"http://127.0.0.1:9000{path}" + (f"?{query}" if query else "")
    request = AWSRequest("GET", url, headers={"x-amz-content-sha256": sigv4.EMPTY_SHA256, "Range": "bytes=0-9"})
    S3SigV4Auth(CREDENTIALS, "s3", "us-west-2").add_auth(request)
    check(request, "s3")
    tampered = AWSRequest("GET", url.replace("bucket", "bucket2"), headers=dict(request.headers))
    with pytest.raises(sigv4.SigV4Error):
        check(tampered, "s3")


def test_presigned_urls_verify_and_expire():
    request = AWSRequest("GET", "http://127.0.0.1:9000/bucket/key.txt")
    S3SigV4QueryAuth(CREDENTIALS, "s3", "us-west-2", expires=60).add_auth(request)
    claim = check(request, "s3")
    assert claim.presigned and claim.expires == 60
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    with pytest.raises(sigv4.SigV4Error) as caught:
        sigv4.check_time(claim, later)
    assert caught.value.kind == "expired"


def test_requests_dated_more_than_15_minutes_away_are_refused():
    claim = sigv4.parse_authorization(headers_of(sts_request()))
    now = datetime.now(timezone.utc)
    sigv4.check_time(claim, now + timedelta(minutes=14))
    for skew in (timedelta(minutes=16), -timedelta(minutes=16)):
        with pytest.raises(sigv4.SigV4Error) as caught:
            sigv4.check_time(claim, now + skew)
        assert caught.value.kind == "skew"


@pytest.mark.parametrize("header, problem", [
    ("AWS4-HMAC-SHA256 Credential=K/20260101/us-west-2/s3/aws4_request, SignedHeaders=host, Signature=abc", "malformed"),
    ("AWS4-HMAC-SHA256 Credential=K/2026/us-west-2/s3/aws4_request, SignedHeaders=host, Signature=" + "a" * 64, "malformed"),
    ("AWS4-HMAC-SHA256 Credential=K/20260101/us-west-2/s3/aws4_request, SignedHeaders=x-amz-date, Signature=" + "a" * 64,
     "malformed"),
    ("AWS AKIA:signature", "malformed"),
])
def test_malformed_authorization_headers_are_refused(header, problem):
    message = email.message.Message()
    message["Authorization"] = header
    message["X-Amz-Date"] = "20260101T000000Z"
    with pytest.raises(sigv4.SigV4Error) as caught:
        sigv4.parse_authorization(message)
    assert caught.value.kind == problem


# AWS's published example of a chunked upload signed chunk by chunk ("Signature Calculations for
# the Authorization Header: Transferring Payload in Multiple Chunks"), values as documented.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_HEADERS = {
    "content-encoding": "aws-chunked", "content-length": "66824", "host": "s3.amazonaws.com",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "x-amz-date": "20130524T000000Z",
    "x-amz-decoded-content-length": "66560", "x-amz-storage-class": "REDUCED_REDUNDANCY",
}
EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXAMPLE_CHUNKS = [
    (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]


def example_claim():
    return sigv4.Claim("AKIAIOSFODNN7EXAMPLE", sigv4.Scope("20130524", "us-east-1", "s3"), tuple(sorted(EXAMPLE_HEADERS)),
                       EXAMPLE_SEED, "20130524T000000Z")


def example_body(chunks=EXAMPLE_CHUNKS):
    return b"".join(f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n" for data, signature in chunks)


def test_the_published_chunked_upload_example_verifies_chunk_by_chunk():
    claim = example_claim()
    key = sigv4.verify(claim, EXAMPLE_SECRET, "PUT", "/examplebucket/chunkObject.txt", [], EXAMPLE_HEADERS,
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = example_body()
    assert len(body) == 66824
    reader = sigv4.AwsChunkedReader(io.BytesIO(body), mode=sigv4.STREAMING_SIGNED, claim=claim, key=key)
    assert reader.read() == b"a" * 66560 and reader.done


def test_a_chunk_whose_data_or_signature_was_changed_is_refused():
    claim = example_claim()
    key = sigv4.signing_key(EXAMPLE_SECRET, claim.scope)
    changed = [(b"b" + EXAMPLE_CHUNKS[0][0][1:], EXAMPLE_CHUNKS[0][1]), *EXAMPLE_CHUNKS[1:]]
    with pytest.raises(sigv4.SigV4Error) as caught:
        sigv4.AwsChunkedReader(io.BytesIO(example_body(changed)), mode=sigv4.STREAMING_SIGNED, claim=claim, key=key).read()
    assert caught.value.kind == "mismatch"
    reordered = [EXAMPLE_CHUNKS[1], EXAMPLE_CHUNKS[0], EXAMPLE_CHUNKS[2]]
    with pytest.raises(sigv4.SigV4Error):
        sigv4.AwsChunkedReader(io.BytesIO(example_body(reordered)), mode=sigv4.STREAMING_SIGNED, claim=claim, key=key).read()


def test_a_truncated_chunked_body_is_incomplete():
    claim = example_claim()
    key = sigv4.signing_key(EXAMPLE_SECRET, claim.scope)
    with pytest.raises(sigv4.SigV4Error) as caught:
        sigv4.AwsChunkedReader(io.BytesIO(example_body()[:70000 // 2]), mode=sigv4.STREAMING_SIGNED, claim=claim,
                               key=key).read()
    assert caught.value.detail["code"] == "IncompleteBody"


@pytest.mark.parametrize("algorithm, expected", [
    # The standard check values of each CRC over b"123456789".
    ("crc32", "cbf43926"),
    ("crc32c", "e3069283"),
    ("crc64nvme", "ae8b14860a799888"),
    ("sha256", hashlib.sha256(b"123456789").hexdigest()),
])
def test_checksums_match_their_check_values(algorithm, expected):
    import base64

    checksum = sigv4.Checksum(algorithm)
    checksum.update(b"1234")
    checksum.update(b"56789")
    assert base64.b64decode(checksum.value()).hex() == expected
    checksum.expected = checksum.value()
    checksum.check()
    checksum.expected = base64.b64encode(b"\0" * len(bytes.fromhex(expected))).decode()
    with pytest.raises(sigv4.SigV4Error):
        checksum.check()
