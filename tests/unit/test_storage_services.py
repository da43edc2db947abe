"""storage.services: the API the Storage tab and the in-run S3 endpoint share."""

import hashlib
import io
import random

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from storage import services
from storage.errors import (
    AlreadyExists,
    IncompleteBody,
    InvalidKey,
    InvalidRange,
    KeyClash,
    ObjectNotFound,
    ObjectTooLarge,
    QuotaExceeded,
)
from storage.models import StoredObject, WriterKind, key_successor
from tests.factories import make_function

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def blob_store(settings, tmp_path):
    """A storage folder of this test's own: test processes share DATA_DIR and reuse organization ids."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}},
    }


def put(org, key, data=b"x", **kwargs):
    return services.object_put(organization=org, key=key, fileobj_or_bytes=data, **kwargs)


def blobs_of(org):
    """The blob names on disk for an organization: what would be orphaned if a write went wrong."""
    folder = f"{services.BLOB_PREFIX}/{org.id}"
    if not default_storage.exists(folder):
        return set()
    _, files = default_storage.listdir(folder)
    return {f"{folder}/{name}" for name in files}


def read(obj, start=None, end=None):
    with services.object_open(obj, start, end) as reader:
        return reader.read()


class Exploding(io.RawIOBase):
    """A file object whose read fails after `good` bytes, like a client that hangs up mid-upload."""

    def __init__(self, good, chunk=4):
        self.good = good
        self.chunk = chunk
        self.sent = 0

    def readable(self):
        return True

    def read(self, size=-1):
        if self.sent >= self.good:
            raise ConnectionResetError("client went away")
        data = b"N" * min(self.chunk, self.good - self.sent)
        self.sent += len(data)
        return data


class Stream:
    """A source of unknown length (no .size), as a chunked request body is."""

    def __init__(self, data):
        self.buffer = io.BytesIO(data)

    def read(self, size=-1):
        return self.buffer.read(size)


# --- keys ---


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "cannot be empty"),
        ("é" * 513, "1,026 bytes long; a file's full name (folders included) is at most 1,024 bytes"),
        ("reports/../secrets.txt", "has a “..” segment"),
        ("..", "has a “..” segment"),
        ("/etc/passwd", "starts with “/”"),
        ("a\\b.txt", "contains a backslash"),
        ("line\nbreak", "contains a control character (U+000A)"),
        ("bell\x07", "contains a control character (U+0007)"),
        ("del\x7f", "contains a control character (U+007F)"),
        ("nul\x00", "contains a control character (U+0000)"),
        ("\ud800", "is not valid UTF-8"),
    ],
)
def test_it_rejects_bad_keys_with_a_clear_message(key, message):
    with pytest.raises(InvalidKey) as error:
        services.validate_key(key)
    assert message in str(error.value)


@pytest.mark.parametrize("key", ["a", "ns/key", "é" * 512, "a b/c d.txt", "a..b/.hidden", "trailing/", "日本/データ.json"])
def test_it_accepts_ordinary_keys(key):
    assert services.validate_key(key) == key


def test_a_bad_key_stores_nothing(org):
    with pytest.raises(InvalidKey):
        put(org, "../escape", b"data")
    assert not StoredObject.objects.exists()
    assert blobs_of(org) == set()


def test_key_successor_bounds_a_prefix():
    assert key_successor("abc") == "abd"
    assert key_successor("a/") == "a0"
    assert key_successor("") is None
    assert key_successor("a\U0010ffff") == "b"
    assert key_successor("\ud7ff") == "\ue000"


# --- writing ---


def test_it_stores_bytes_with_md5_etag_size_and_type(org, users):
    obj = put(org, "reports/daily.json", b'{"ok": true}', writer_user=users["full_admin"])
    assert obj.size == 12
    assert obj.etag == hashlib.md5(b'{"ok": true}').hexdigest()
    assert obj.content_type == "application/json"
    assert obj.folder == "reports/"
    assert obj.blob_name.startswith(f"orgfiles/{org.id}/")
    assert obj.writer_kind == WriterKind.USER and obj.writer_label == "full_admin@example.com"
    assert read(obj) == b'{"ok": true}'
    assert services.object_get(organization=org, key="reports/daily.json").pk == obj.pk


def test_it_streams_a_file_object_in_chunks(org):
    data = bytes(range(256)) * 9000  # over two chunks
    obj = put(org, "big.bin", io.BytesIO(data), content_type="application/octet-stream", size=len(data))
    assert obj.size == len(data)
    assert obj.etag == hashlib.md5(data).hexdigest()
    assert read(obj) == data


def test_it_keeps_a_given_content_type_and_ignores_a_malformed_one(org):
    assert put(org, "a.bin", b"1", content_type="text/csv; charset=utf-8").content_type == "text/csv; charset=utf-8"
    assert put(org, "b.txt", b"1", content_type="not a type\n").content_type == "text/plain"
    assert put(org, "noext", b"1", content_type="").content_type == "application/octet-stream"


def test_replacing_points_to_a_new_blob_and_removes_the_old_one_after_commit(org, django_capture_on_commit_callbacks):
    first = put(org, "data.txt", b"version one")
    old_blob = first.blob_name
    with django_capture_on_commit_callbacks(execute=True):
        second = put(org, "data.txt", b"version two, longer")
    assert second.pk == first.pk
    assert second.blob_name != old_blob
    assert not default_storage.exists(old_blob)
    assert read(second) == b"version two, longer"
    assert StoredObject.objects.filter(organization=org).count() == 1


def test_an_upload_interrupted_midway_leaves_the_old_version_and_no_new_row(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        old = put(org, "config.json", b'{"v": 1}')
    before = blobs_of(org)
    with pytest.raises(ConnectionResetError):
        put(org, "config.json", Exploding(good=20), size=100)
    with pytest.raises(ConnectionResetError):
        put(org, "brand-new.json", Exploding(good=20), size=100)
    current = services.object_get(organization=org, key="config.json")
    assert (current.blob_name, current.etag, current.size) == (old.blob_name, old.etag, old.size)
    assert read(current) == b'{"v": 1}'
    assert not StoredObject.objects.filter(key="brand-new.json").exists()
    # The half-written blobs were removed: nothing orphaned.
    assert blobs_of(org) == before


def test_an_upload_shorter_than_announced_stores_nothing(org):
    with pytest.raises(IncompleteBody) as error:
        put(org, "short.bin", Stream(b"12345"), size=10)
    assert "ended after 5 of 10 bytes" in str(error.value)
    with pytest.raises(IncompleteBody):
        put(org, "long.bin", Stream(b"12345678901"), size=10)
    assert not StoredObject.objects.exists()
    assert blobs_of(org) == set()


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=100)
def test_a_write_over_quota_is_refused_before_any_byte_is_stored(org):
    put(org, "a.bin", b"a" * 60)
    source = Exploding(good=1000)  # would raise if a single byte were read
    with pytest.raises(QuotaExceeded) as error:
        put(org, "b.bin", source, size=50)
    assert source.sent == 0
    assert "over its quota of 100 bytes (40 bytes free)" in str(error.value)
    assert list(StoredObject.objects.values_list("key", flat=True)) == ["a.bin"]
    assert len(blobs_of(org)) == 1


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=100)
def test_a_stream_of_unknown_length_is_stopped_when_it_passes_the_quota(org):
    put(org, "a.bin", b"a" * 60)
    with pytest.raises(QuotaExceeded):
        put(org, "b.bin", Stream(b"b" * 50))
    assert list(StoredObject.objects.values_list("key", flat=True)) == ["a.bin"]
    assert len(blobs_of(org)) == 1


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=100)
def test_replacing_a_file_gives_its_space_back(org):
    put(org, "a.bin", b"a" * 60)
    put(org, "a.bin", b"b" * 90)
    assert services.usage_bytes(organization=org) == 90


@override_settings(FUNCTIONS_STORAGE_MAX_OBJECT_BYTES=10)
def test_an_object_over_the_size_limit_is_refused(org):
    with pytest.raises(ObjectTooLarge) as error:
        put(org, "big.bin", b"x" * 11)
    assert "one file is at most 10 bytes" in str(error.value)
    with pytest.raises(ObjectTooLarge):
        put(org, "big.bin", Stream(b"x" * 11))
    assert not StoredObject.objects.exists()
    assert blobs_of(org) == set()


def test_the_quota_defaults_to_five_gigabytes(org, settings):
    assert settings.FUNCTIONS_STORAGE_QUOTA_BYTES == 5 * 1024**3
    assert settings.FUNCTIONS_STORAGE_MAX_OBJECT_BYTES == 5 * 1024**3
    assert services.format_bytes(services.quota_bytes(organization=org)) == "5 GB"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 bytes"), (1, "1 byte"), (1023, "1,023 bytes"), (1536, "1.5 KB"), (int(1.2 * 1024**3), "1.2 GB")],
)
def test_sizes_read_the_way_people_read_them(count, text):
    assert services.format_bytes(count) == text


def test_a_file_cannot_take_a_folders_name_nor_sit_under_a_file(org):
    put(org, "reports/daily.csv")
    with pytest.raises(KeyClash) as error:
        put(org, "reports", b"file named like the folder")
    assert "There is already a folder named “reports/”" in str(error.value)
    put(org, "notes")
    with pytest.raises(KeyClash) as error:
        put(org, "notes/today.txt")
    assert "“notes” is a file, so it cannot also be a folder" in str(error.value)
    with pytest.raises(KeyClash):
        services.folder_create(organization=org, prefix="notes/")
    assert sorted(StoredObject.objects.values_list("key", flat=True)) == ["notes", "reports/daily.csv"]


def test_the_s3_endpoint_may_allow_what_plain_s3_allows(org):
    put(org, "a")
    put(org, "a/b", check_clash=False)
    assert StoredObject.objects.count() == 2


def test_objects_belong_to_their_organization(org, other_org):
    put(org, "shared-name.txt", b"ours")
    put(other_org, "shared-name.txt", b"theirs")
    assert read(services.object_get(organization=org, key="shared-name.txt")) == b"ours"
    assert services.object_delete(organization=other_org, key="shared-name.txt") is True
    assert read(services.object_get(organization=org, key="shared-name.txt")) == b"ours"
    with pytest.raises(ObjectNotFound):
        services.object_get(organization=other_org, key="shared-name.txt")


def test_a_function_writer_still_reads_right_after_the_function_is_deleted(org):
    function = make_function(org, "kv-writer")
    obj = put(org, "kv-writer/counter", b"41", writer_function=function)
    assert (obj.writer_kind, obj.writer_label) == (WriterKind.FUNCTION, "kv-writer")
    function.deployed_version = None
    function.save()
    function.delete()
    obj.refresh_from_db()
    assert obj.written_by_function is None
    assert obj.writer_label == "kv-writer"


def test_a_function_of_another_organization_cannot_be_the_writer(org, other_org):
    function = make_function(other_org, "theirs")
    with pytest.raises(ValueError):
        put(org, "x", writer_function=function)


# --- reading ---


def test_ranges_read_the_bytes_asked_for(org):
    obj = put(org, "digits.txt", b"0123456789")
    assert read(obj, 2, 5) == b"2345"
    assert read(obj, 7, None) == b"789"
    assert read(obj, 8, 100) == b"89"
    assert read(obj, None, 2) == b"012"
    with pytest.raises(InvalidRange):
        services.object_open(obj, 10, 12)
    with pytest.raises(InvalidRange):
        services.object_open(obj, 5, 3)
    assert read(put(org, "empty", b"")) == b""


def test_a_missing_object_raises_not_found(org):
    with pytest.raises(ObjectNotFound) as error:
        services.object_get(organization=org, key="nope.txt")
    assert error.value.code == "NoSuchKey"


def test_copy_makes_an_independent_object(org, django_capture_on_commit_callbacks):
    put(org, "src.json", b'{"a": 1}', content_type="application/json")
    copy = services.object_copy(organization=org, source_key="src.json", destination_key="backup/src.json")
    assert (copy.size, copy.etag, copy.content_type) == (8, hashlib.md5(b'{"a": 1}').hexdigest(), "application/json")
    with django_capture_on_commit_callbacks(execute=True):
        services.object_delete(organization=org, key="src.json")
    assert read(services.object_get(organization=org, key="backup/src.json")) == b'{"a": 1}'


def test_delete_says_whether_the_object_existed_and_removes_its_blob(org, django_capture_on_commit_callbacks):
    obj = put(org, "gone.txt", b"bye")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.object_delete(organization=org, key="gone.txt") is True
    assert services.object_delete(organization=org, key="gone.txt") is False
    assert not default_storage.exists(obj.blob_name)


def test_usage_is_the_sum_of_the_organizations_objects(org, other_org):
    put(org, "a", b"x" * 10)
    put(org, "b/c", b"x" * 5)
    put(other_org, "a", b"x" * 100)
    assert services.usage_bytes(organization=org) == 15


# --- listing ---


def reference_listing(keys, prefix="", delimiter=None):
    """S3's ListObjectsV2 order computed the plain way: every key, in UTF-8 byte order."""
    entries = []
    for key in sorted(keys, key=lambda k: k.encode("utf-8")):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if delimiter and delimiter in rest:
            group = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if not entries or entries[-1] != ("prefix", group):
                entries.append(("prefix", group))
        else:
            entries.append(("object", key))
    return entries


def paged(org, prefix, delimiter, limit):
    entries, after, calls = [], None, 0
    while True:
        listing = services.object_list(organization=org, prefix=prefix, delimiter=delimiter, start_after=after, limit=limit)
        calls += 1
        page = sorted(
            [("object", o.key) for o in listing.objects] + [("prefix", p) for p in listing.common_prefixes],
            key=lambda entry: entry[1].encode("utf-8"),
        )
        assert len(page) <= limit
        entries += page
        if not listing.is_truncated:
            return entries, calls
        after = listing.next_after


def test_listing_orders_keys_byte_by_byte_like_s3(org):
    keys = ["b", "B", "a", "Z", "é", "a/b", "a-b", "a0", "_", "~", "日本"]
    for key in keys:
        put(org, key, check_clash=False)
    listing = services.object_list(organization=org)
    assert [o.key for o in listing.objects] == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert listing.is_truncated is False


def test_a_prefix_matches_case_and_wildcards_literally(org):
    for key in ["Apple", "apple", "a%b", "a_b", "axb"]:
        put(org, key)
    assert [o.key for o in services.object_list(organization=org, prefix="a_").objects] == ["a_b"]
    assert [o.key for o in services.object_list(organization=org, prefix="a%").objects] == ["a%b"]
    assert [o.key for o in services.object_list(organization=org, prefix="A").objects] == ["Apple"]


def test_listing_with_a_delimiter_rolls_folders_up(org):
    for key in ["top.txt", "ns1/a", "ns1/b", "ns1/sub/c", "ns2/", "ns2/x", "zz"]:
        put(org, key)
    listing = services.object_list(organization=org, delimiter="/")
    assert [o.key for o in listing.objects] == ["top.txt", "zz"]
    assert listing.common_prefixes == ["ns1/", "ns2/"]
    inner = services.object_list(organization=org, prefix="ns1/", delimiter="/")
    assert [o.key for o in inner.objects] == ["ns1/a", "ns1/b"]
    assert inner.common_prefixes == ["ns1/sub/"]
    marker = services.object_list(organization=org, prefix="ns2/", delimiter="/")
    assert [o.key for o in marker.objects] == ["ns2/", "ns2/x"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.slow
def test_paging_through_a_listing_matches_s3_for_any_page_size(org, seed):
    rng = random.Random(seed)
    alphabet = ["a", "b", "B", "é", "/", "-", "0"]
    keys = set()
    while len(keys) < 120:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        if key.startswith("/") or "//" in key:
            continue
        keys.add(key)
    for key in keys:
        put(org, key, check_clash=False)
    for prefix in ["", "a", "a/", "b/"]:
        for delimiter in [None, "/"]:
            expected = reference_listing(keys, prefix, delimiter)
            for limit in [1, 3, 7, 1000]:
                got, _ = paged(org, prefix, delimiter, limit)
                assert got == expected, (prefix, delimiter, limit)


def test_a_huge_folder_is_skipped_in_one_jump(org, django_assert_max_num_queries):
    StoredObject.objects.bulk_create(
        StoredObject(organization=org, key=f"big/{i:05d}", folder="big/", size=1, etag="0" * 32,
                     content_type="text/plain", last_modified="2026-01-01T00:00Z", blob_name="x")
        for i in range(3000)
    )
    put(org, "after.txt")
    with django_assert_max_num_queries(6):
        listing = services.object_list(organization=org, delimiter="/", limit=10)
    assert listing.common_prefixes == ["big/"]
    assert [o.key for o in listing.objects] == ["after.txt"]


def test_start_after_a_common_prefix_resumes_after_the_whole_folder(org):
    for key in ["a/1", "a/2", "b"]:
        put(org, key)
    listing = services.object_list(organization=org, delimiter="/", start_after="a/")
    assert [o.key for o in listing.objects] == ["b"] and listing.common_prefixes == []


def test_files_of_a_folder_page_by_size_without_repeating_or_skipping(org):
    sizes = [5, 3, 5, 1, 5, 2, 3]
    for index, size in enumerate(sizes):
        put(org, f"f/{index}.bin", b"x" * size)
    put(org, "f/sub/deeper.bin", b"x" * 100)
    seen, after = [], None
    while True:
        files, more = services.folder_files_sorted(organization=org, folder="f/", sort="size", descending=True, after=after, limit=2)
        seen += [(o.size, o.key) for o in files]
        if not more:
            break
        after = (files[-1].size, files[-1].key)
    assert seen == sorted(((s, f"f/{i}.bin") for i, s in enumerate(sizes)), reverse=True)
    ascending, _ = services.folder_files_sorted(organization=org, folder="f/", sort="modified", descending=False, limit=100)
    assert [o.key for o in ascending] == [f"f/{i}.bin" for i in range(len(sizes))]


def test_subfolders_are_found_without_reading_every_file(org):
    for key in ["p/a.txt", "p/b.txt", "p/one/x", "p/one/y", "p/two/", "p/zz/deep/z", "q/other"]:
        put(org, key)
    assert services.subfolder_list(organization=org, folder="p/") == (["p/one/", "p/two/", "p/zz/"], False)
    assert services.subfolder_list(organization=org, folder="p/", limit=2) == (["p/one/", "p/two/"], True)
    assert services.subfolder_list(organization=org, folder="p/", name_prefix="t") == (["p/two/"], False)


# --- folders ---


def test_creating_a_folder_stores_a_zero_byte_marker(org):
    marker = services.folder_create(organization=org, prefix="reports/")
    assert (marker.key, marker.size, marker.is_folder_marker) == ("reports/", 0, True)
    with pytest.raises(AlreadyExists):
        services.folder_create(organization=org, prefix="reports/")
    with pytest.raises(InvalidKey):
        services.folder_create(organization=org, prefix="no-slash")


def test_deleting_a_folder_deletes_everything_under_it_and_nothing_else(org, other_org, django_capture_on_commit_callbacks):
    for key in ["reports/", "reports/a.csv", "reports/2026/b.csv", "reports2/keep.csv", "reportsx"]:
        put(org, key)
    put(other_org, "reports/theirs.csv")
    files, total = services.folder_summary(organization=org, prefix="reports/")
    assert (files, total) == (2, 2)
    doomed = set(StoredObject.objects.filter(organization=org, key__startswith="reports/").values_list("blob_name", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.folder_delete(organization=org, prefix="reports/") == 2
    assert sorted(StoredObject.objects.filter(organization=org).values_list("key", flat=True)) == ["reports2/keep.csv", "reportsx"]
    assert StoredObject.objects.filter(organization=other_org).count() == 1
    assert not any(default_storage.exists(blob) for blob in doomed)
    with pytest.raises(InvalidKey):
        services.folder_delete(organization=org, prefix="")


def test_deleting_an_organization_removes_its_blobs(org, django_capture_on_commit_callbacks):
    obj = put(org, "a.txt", b"bytes")
    with django_capture_on_commit_callbacks(execute=True):
        org.delete()
    assert not default_storage.exists(obj.blob_name)


# --- uploads and previews ---


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=100)
def test_an_upload_plan_checks_the_whole_batch_first(org):
    put(org, "in/a.txt", b"x" * 40)
    assert services.upload_plan(organization=org, items=[("in/a.txt", 50), ("in/b.txt", 50)]).existing == ["in/a.txt"]
    with pytest.raises(QuotaExceeded):
        services.upload_plan(organization=org, items=[("in/b.txt", 50), ("in/c.txt", 20)])
    with pytest.raises(InvalidKey, match="Two of the files"):
        services.upload_plan(organization=org, items=[("in/b.txt", 1), ("in/b.txt", 1)])


def test_json_previews_pretty_printed_and_text_as_is(org):
    preview = services.object_preview(put(org, "kv/state.json", b'{"b":[1,2],"a":"\xc3\xa9"}'))
    assert preview.is_json and preview.text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "é"\n}'
    broken = services.object_preview(put(org, "kv/broken.json", b'{"a":'))
    assert broken.text == '{"a":' and "not valid JSON" in broken.note
    assert services.object_preview(put(org, "notes.txt", b"hello\n")).text == "hello\n"
    assert services.object_preview(put(org, "image.png", b"\x89PNG\r\n")) is None
    assert services.object_preview(put(org, "binary.txt", b"\xff\xfe\x00")) is None
    assert services.object_preview(put(org, "huge.txt", b"x" * (services.PREVIEW_MAX_BYTES + 1))) is None


# --- leftovers of killed writes ---


def test_the_sweep_deletes_only_old_blobs_that_no_object_points_to(org, other_org):
    import os
    import time
    from datetime import timedelta

    from django.core.management import call_command

    kept = put(org, "kept.txt", b"kept")
    theirs = put(other_org, "theirs.txt", b"theirs")
    orphan = default_storage.save(f"orgfiles/{org.id}/deadbeef", io.BytesIO(b"left by a killed write"))
    fresh = default_storage.save(f"orgfiles/{org.id}/cafebabe", io.BytesIO(b"a write in progress"))
    package = default_storage.save(f"packages/{org.id}/abc.zip", io.BytesIO(b"not ours"))
    hour_ago = time.time() - 2 * 3600
    for name in (orphan, kept.blob_name, theirs.blob_name, package):
        os.utime(default_storage.path(name), (hour_ago, hour_ago))

    out = io.StringIO()
    call_command("storage_sweep", stdout=out)
    assert out.getvalue().strip() == '{"swept": 1}'
    assert not default_storage.exists(orphan)
    assert all(default_storage.exists(n) for n in (kept.blob_name, theirs.blob_name, fresh, package))
    assert services.blob_sweep(older_than=timedelta(0)) == [fresh]
