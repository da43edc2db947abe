"""functions.bundles: zip, handler and import.metadata.json checks (pure Python, no database)."""

import hashlib
import io
import json
import stat
import tarfile
import threading
import zipfile

import pytest

from functions.bundles import archive
from functions.bundles.archive import Limits, extract_bundle, inspect_bundle
from functions.bundles.errors import BundleError
from functions.bundles.handler import handler_path, validate_handler
from functions.bundles.metadata import MetadataError, ScheduleEntry, parse_import_metadata, read_import_metadata
from functions.bundles.names import validate_event_parameters, validate_function_name, validate_secret_names
from tests.factories import zip_of_zeros

HANDLER = "def main(event, context):\n    return {'ok': True}\n"


def make_zip(files, *, compression=zipfile.ZIP_DEFLATED):
    """files: {name: str|bytes} or a list of (name|ZipInfo, data) pairs (to allow duplicates)."""
    buf = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in items:
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def lying_zip(name, real_size, declared_size):
    """A zip whose table of contents understates a member of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("function.py", HANDLER)
        zf.writestr(name, b"\0" * real_size)
        zf.getinfo(name).file_size = declared_size  # written to the central directory on close
    buf.seek(0)
    return buf


def error_of(call, *args, **kwargs):
    with pytest.raises(BundleError) as exc_info:
        call(*args, **kwargs)
    return exc_info.value


# --------------------------------------------------------------------------- inspect_bundle


def test_it_describes_a_valid_bundle():
    fileobj = make_zip({"function.py": HANDLER, "lib/": "", "lib/util.py": "X = 1\n"})
    data = fileobj.getvalue()
    info = inspect_bundle(fileobj)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert info.uncompressed_size == len(HANDLER) + len("X = 1\n")
    assert info.file_count == 2
    assert info.files == ("function.py", "lib/util.py")
    assert fileobj.tell() == 0


def test_it_accepts_a_django_uploaded_file():
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("code.zip", make_zip({"function.py": HANDLER}).getvalue())
    assert inspect_bundle(upload).files == ("function.py",)
    validate_handler(upload, "function.main")


def test_it_rejects_a_tar_gz():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        payload = HANDLER.encode()
        member = tarfile.TarInfo("function.py")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    buf.seek(0)
    err = error_of(inspect_bundle, buf)
    assert err.field == "zip"
    assert "gzip file (.gz or .tar.gz), not a .zip" in err.message


def test_it_rejects_a_text_file_renamed_to_zip():
    err = error_of(inspect_bundle, io.BytesIO(b"def main(event, context):\n    pass\n"))
    assert "is a text file, not a .zip" in err.message


def test_it_rejects_an_empty_upload():
    assert "file is empty" in error_of(inspect_bundle, io.BytesIO(b"")).message


def test_it_rejects_a_truncated_zip():
    data = make_zip({"function.py": HANDLER}).getvalue()
    err = error_of(inspect_bundle, io.BytesIO(data[: len(data) // 2]))
    assert "The zip is damaged" in err.message


def test_it_rejects_a_member_with_a_bad_crc():
    payload = b"print('hello')\n" * 50
    data = bytearray(make_zip({"function.py": HANDLER, "data.py": payload}, compression=zipfile.ZIP_STORED).getvalue())
    at = data.index(payload) + 10
    data[at] ^= 0xFF
    err = error_of(inspect_bundle, io.BytesIO(bytes(data)))
    assert err.field == "zip"
    assert "'data.py' fails its checksum (bad CRC-32)" in err.message


def test_it_rejects_a_member_whose_deflate_stream_is_broken():
    payload = bytes(range(256)) * 64
    data = bytearray(make_zip({"blob.bin": payload}).getvalue())
    start = 30 + len("blob.bin")  # the first local header has no extra field
    for i in range(start, start + 40):
        data[i] ^= 0x55
    err = error_of(inspect_bundle, io.BytesIO(bytes(data)))
    assert "The zip is damaged" in err.message and "blob.bin" in err.message


def test_it_rejects_more_than_50_mb_compressed():
    err = error_of(inspect_bundle, io.BytesIO(b"\0" * (50 * 1024 * 1024 + 1)))
    assert "The zip is 50 MB (52,428,801 bytes); the limit is 50 MB compressed" in err.message


def test_it_rejects_a_declared_size_over_200_mb():
    fileobj = lying_zip("big.bin", real_size=10, declared_size=201 * 1024 * 1024)
    err = error_of(inspect_bundle, fileobj)
    assert "larger than 200 MB when uncompressed" in err.message


def test_it_stops_a_zip_bomb_whose_header_lies_about_its_size():
    fileobj = lying_zip("bomb.bin", real_size=3 * 1024 * 1024, declared_size=100)
    assert len(fileobj.getvalue()) < 10 * 1024  # tiny on the wire
    err = error_of(inspect_bundle, fileobj, limits=Limits(max_uncompressed_bytes=1024 * 1024))
    assert err.message.startswith("The zip is larger than 1 MB when uncompressed")


@pytest.mark.slow
def test_it_stops_a_201_mb_zip_bomb_at_the_default_limit():
    buf = zip_of_zeros({"function.py": HANDLER}, "bomb.bin", 201, declared_size=100)
    assert "larger than 200 MB when uncompressed" in error_of(inspect_bundle, buf).message


def test_it_stops_a_zip_bomb_spread_over_many_members():
    files = {f"part{i}.bin": b"\0" * 400_000 for i in range(3)}
    err = error_of(inspect_bundle, make_zip(files), limits=Limits(max_uncompressed_bytes=1_000_000))
    assert "larger than 976.6 KB when uncompressed" in err.message


def test_it_rejects_a_header_that_lies_within_the_limit():
    err = error_of(inspect_bundle, lying_zip("data.bin", real_size=5000, declared_size=100))
    assert "'data.bin' holds 5,000 bytes but its header says 100" in err.message


def test_it_rejects_more_than_10000_entries():
    files = [(f"f{i}.txt", b"") for i in range(10_001)]
    err = error_of(inspect_bundle, make_zip(files, compression=zipfile.ZIP_STORED))
    assert "The zip has 10,001 entries; the limit is 10,000" in err.message


@pytest.mark.parametrize(
    "name, says",
    [
        ("../evil.py", "a path with '..' that points outside the bundle"),
        ("lib/../../evil.py", "a path with '..' that points outside the bundle"),
        ("/etc/cron.d/evil", "an absolute path"),
        ("C:/Windows/evil.py", "a path with a drive letter"),
        ("lib\\evil.py", "a path with backslashes"),
    ],
)
def test_it_rejects_zip_slip(name, says):
    err = error_of(inspect_bundle, make_zip([("function.py", HANDLER), (name, "x")]))
    assert err.field == "zip"
    assert says in err.message
    assert repr(name) in err.message


def test_it_rejects_symlinks():
    link = zipfile.ZipInfo("link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    err = error_of(inspect_bundle, make_zip([("function.py", HANDLER), (link, "/etc/passwd")]))
    assert "'link.py', a symbolic link" in err.message


def test_it_rejects_an_archive_without_files():
    err = error_of(inspect_bundle, make_zip([("lib/", "")]))
    assert "The zip has no files in it" in err.message
    err = error_of(inspect_bundle, make_zip([]))
    assert "The zip has no files in it" in err.message


def test_it_rejects_duplicate_member_names():
    with pytest.warns(UserWarning, match="Duplicate name"):
        fileobj = make_zip([("function.py", HANDLER), ("function.py", "other")])
    err = error_of(inspect_bundle, fileobj)
    assert "'function.py' more than once" in err.message


def test_it_treats_dot_slash_names_as_duplicates():
    err = error_of(inspect_bundle, make_zip([("function.py", HANDLER), ("./function.py", HANDLER)]))
    assert "more than once (also as 'function.py')" in err.message


def test_it_rejects_a_path_that_is_both_file_and_folder():
    err = error_of(inspect_bundle, make_zip([("lib", "x"), ("lib/a.py", "y")]))
    assert "'lib' both as a file and as a folder" in err.message


def test_it_rejects_encrypted_members():
    fileobj = make_zip({"function.py": HANDLER}, compression=zipfile.ZIP_STORED)
    data = bytearray(fileobj.getvalue())
    # Set the "encrypted" flag in the central directory record.
    cd = data.index(b"PK\x01\x02")
    data[cd + 8] |= 0x1
    err = error_of(inspect_bundle, io.BytesIO(bytes(data)))
    assert "'function.py' is encrypted" in err.message


def test_it_rejects_compression_other_than_deflate():
    err = error_of(inspect_bundle, make_zip({"function.py": HANDLER}, compression=zipfile.ZIP_BZIP2))
    assert "uses compression method 12" in err.message


# --------------------------------------------------------------------------- handler


@pytest.mark.parametrize(
    "handler, expected",
    [
        ("function.main", ("function.py", "main")),
        ("a.b.main", ("a/b.py", "main")),
        ("dir/mod.fn", ("dir/mod.py", "fn")),
        ("a/b.c.main", ("a/b/c.py", "main")),
        ("my-dir/my_mod._handler2", ("my-dir/my_mod.py", "_handler2")),
    ],
)
def test_it_maps_a_handler_to_its_file_and_function(handler, expected):
    assert handler_path(handler) == expected


@pytest.mark.parametrize(
    "handler",
    ["main", "", "function.", ".main", "function.2main", "function.ma-in", "func tion.main", "function.main\n",
     "a..main", "/abs.main", "../up.main", "a//b.main", "a/../b.main"],
)
def test_it_rejects_malformed_handlers(handler):
    err = error_of(handler_path, handler)
    assert err.field == "handler"
    assert "path/to/module.function" in err.message or "empty path segment" in err.message


def validate(source, handler="function.main", name="function.py"):
    validate_handler(make_zip({name: source}), handler)


def handler_error(source, handler="function.main", name="function.py"):
    err = error_of(validate, source, handler, name)
    assert err.field == "handler"
    return err.message


def test_it_accepts_a_plain_two_parameter_handler():
    validate(HANDLER)
    validate("def main(event, context=None, /, *args, flag=False, **kwargs):\n    pass\n")


def test_it_accepts_a_handler_in_a_nested_folder():
    validate_handler(make_zip({"src/app/handlers.py": HANDLER, "src/app/__init__.py": ""}), "src.app.handlers.main")
    validate_handler(make_zip({"src/app/handlers.py": HANDLER}), "src/app/handlers.main")


def test_it_reports_a_missing_handler_file():
    message = handler_error(HANDLER, "other.main")
    assert message.startswith("Handler 'other.main' needs the file other.py at the root of the zip")


def test_it_explains_a_zip_of_the_folder_instead_of_its_contents():
    message = handler_error(HANDLER, "function.main", name="myfn/function.py")
    assert "It has myfn/function.py: zip the contents of the 'myfn' folder" in message


def test_it_reports_a_missing_function():
    message = handler_error("def helper(event, context):\n    pass\n", "function.main")
    assert "function.py has no top-level function named 'main'" in message
    assert "functions in the file: helper" in message


def test_it_reports_a_handler_nested_in_a_class():
    message = handler_error("class App:\n    def main(self, event):\n        pass\n")
    assert "the one at line 2 is inside class 'App'" in message


def test_it_rejects_an_async_handler():
    message = handler_error("async def main(event, context):\n    pass\n")
    assert message.startswith("function.py line 1: 'main' is an async def")


@pytest.mark.parametrize(
    "signature, says",
    [
        ("event", "takes 1 positional parameter (event)"),
        ("event, context, extra", "takes 3 positional parameters (event, context, extra)"),
        ("*args", "takes no positional parameters"),
    ],
)
def test_it_rejects_a_handler_without_exactly_two_positional_parameters(signature, says):
    message = handler_error(f"def main({signature}):\n    pass\n")
    assert message.startswith(f"function.py line 1: 'main' {says}; the handler must take exactly two")


def test_it_rejects_a_required_keyword_only_parameter():
    message = handler_error("def main(event, context, *, region):\n    pass\n")
    assert "required keyword-only parameter 'region'" in message


def test_it_reports_a_syntax_error_with_file_and_line():
    message = handler_error("import os\n\ndef main(event, context)\n    pass\n", "lib/fn.main", name="lib/fn.py")
    assert message == "lib/fn.py line 3: expected ':'"


def test_it_reports_a_handler_file_that_is_not_text():
    assert handler_error(b"\x00\x01") == "function.py: source code string cannot contain null bytes"


def test_it_rejects_a_class_named_like_the_handler():
    message = handler_error("class main:\n    def __init__(self, event, context):\n        pass\n")
    assert message.startswith("function.py line 1: 'main' is a class; the handler must be a function")


def test_it_rejects_a_lambda_handler():
    assert "'main' is a lambda" in handler_error("main = lambda event, context: None\n")


def test_it_rejects_an_imported_handler():
    message = handler_error("from impl import main\n")
    assert "'main' is imported there, not defined with def" in message


def test_the_last_module_level_definition_wins():
    validate("async def main(event, context):\n    pass\n\ndef main(event, context):\n    pass\n")
    assert "async def" in handler_error("def main(event, context):\n    pass\n\nasync def main(e, c):\n    pass\n")
    validate("try:\n    import fast\nexcept ImportError:\n    pass\nelse:\n    def main(event, context):\n        pass\n")


def test_it_never_executes_the_handler_file(tmp_path):
    marker = tmp_path / "ran"
    validate(f"open({str(marker)!r}, 'w').close()\n" + HANDLER)
    assert not marker.exists()


# --------------------------------------------------------------------------- import.metadata.json

FULL_METADATA = {
    "name": "fleet-report_2",
    "description": "Sends the daily report",
    "handler": "function.main",
    "eventParameters": {"region": "us", "threshold": "5"},
    "secretsKeys": ["API_TOKEN", "WEBHOOK"],
    "isSchedulingEnabled": True,
    "schedule": {
        "entries": [
            {"timeSinceMidnightMs": 0, "daysOfWeek": [True] * 7},
            {"timeSinceMidnightMs": 86_399_999, "daysOfWeek": [False, True, False, False, False, False, False]},
        ]
    },
}


def metadata_errors(doc):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(MetadataError) as exc_info:
        parse_import_metadata(text)
    return exc_info.value.errors


def test_it_reads_a_full_import_metadata_file():
    fileobj = make_zip({"function.py": HANDLER, "import.metadata.json": json.dumps(FULL_METADATA)})
    meta = read_import_metadata(fileobj)
    assert meta.name == "fleet-report_2"
    assert meta.description == "Sends the daily report"
    assert meta.handler == "function.main"
    assert meta.event_parameters == {"region": "us", "threshold": "5"}
    assert meta.secret_names == ("API_TOKEN", "WEBHOOK")
    assert meta.scheduling_enabled is True
    assert meta.schedule_entries == (
        ScheduleEntry(0, (True,) * 7),
        ScheduleEntry(86_399_999, (False, True, False, False, False, False, False)),
    )


def test_it_returns_none_without_import_metadata():
    assert read_import_metadata(make_zip({"function.py": HANDLER, "sub/import.metadata.json": "{}"})) is None


def test_it_defaults_missing_metadata_fields():
    meta = parse_import_metadata(b"\xef\xbb\xbf{}")
    assert (meta.name, meta.description, meta.handler, meta.event_parameters) == (None, "", None, {})
    assert (meta.secret_names, meta.scheduling_enabled, meta.schedule_entries) == ((), False, ())


def test_it_reports_invalid_json_with_its_position():
    fileobj = make_zip({"function.py": HANDLER, "import.metadata.json": '{"name": "abc",\n "handler": }'})
    with pytest.raises(MetadataError) as exc_info:
        read_import_metadata(fileobj)
    err = exc_info.value
    assert err.field == "metadata"
    assert err.errors == [("import.metadata.json", "is not valid JSON: Expecting value at line 2 column 13")]


def test_it_requires_a_json_object():
    assert metadata_errors("[1, 2]") == [("import.metadata.json", "must be a JSON object, not a list")]


def test_it_reports_wrong_types_field_by_field():
    errors = dict(metadata_errors({
        "name": 12,
        "description": ["x"],
        "handler": False,
        "eventParameters": ["a"],
        "secretsKeys": "API_TOKEN",
        "isSchedulingEnabled": "yes",
        "schedule": [],
    }))
    assert errors == {
        "name": "must be a string, not a number",
        "description": "must be a string, not a list",
        "handler": "must be a string, not a boolean",
        "eventParameters": "must be an object of names to string values, not a list",
        "secretsKeys": "must be a list of secret names, not a string",
        "isSchedulingEnabled": "must be true or false, not a string",
        "schedule": "must be an object with an 'entries' list, not a list",
    }


@pytest.mark.parametrize("name, length", [("ab", 2), ("a" * 36, 36)])
def test_it_rejects_an_import_name_outside_3_to_35_characters(name, length):
    errors = metadata_errors({"name": name})
    assert errors == [("name", f"Function name {name!r} is {length} characters long; use 3-35 characters, only "
                               "letters, digits, '_' and '-'")]


def test_it_rejects_a_bad_metadata_handler():
    [(field, message)] = metadata_errors({"handler": "main"})
    assert field == "handler" and "path/to/module.function" in message


def test_it_reports_schedule_entry_problems_field_by_field():
    errors = metadata_errors({"schedule": {"entries": [
        {"timeSinceMidnightMs": 0, "daysOfWeek": [True] * 6},
        {"timeSinceMidnightMs": 86_400_000, "daysOfWeek": [False] * 7},
        {"timeSinceMidnightMs": -1, "daysOfWeek": [1, 0, 0, 0, 0, 0, 0]},
        {"timeSinceMidnightMs": "9:00"},
        "daily",
    ]}})
    assert errors == [
        ("schedule.entries[0].daysOfWeek", "must have 7 booleans (Sunday first), not 6"),
        ("schedule.entries[1].timeSinceMidnightMs", "must be between 0 and 86399999 (got 86400000)"),
        ("schedule.entries[1].daysOfWeek", "must have at least one day set to true"),
        ("schedule.entries[2].timeSinceMidnightMs", "must be between 0 and 86399999 (got -1)"),
        ("schedule.entries[2].daysOfWeek", "must contain only true or false"),
        ("schedule.entries[3].timeSinceMidnightMs", "must be a whole number of milliseconds, not a string"),
        ("schedule.entries[3].daysOfWeek", "must be a list of 7 booleans (Sunday first), not null"),
        ("schedule.entries[4]", "must be an object with timeSinceMidnightMs and daysOfWeek, not a string"),
    ]


def test_it_rejects_duplicate_secrets_keys():
    errors = metadata_errors({"secretsKeys": ["TOKEN", "OTHER", " TOKEN", ""]})
    assert errors == [
        ("secretsKeys[2]", "Secret 'TOKEN' appears more than once; names must be unique"),
        ("secretsKeys[3]", "Secret name is empty"),
    ]


def test_it_rejects_non_string_event_parameter_values():
    errors = metadata_errors('{"eventParameters": {"region": "us", "limit": 5, "on": true, "x": "1", "x": "2"}}')
    assert errors == [
        ('eventParameters["x"]', "appears more than once"),
        ('eventParameters["limit"]', "Event parameter 'limit' must have a string value, not a number"),
        ('eventParameters["on"]', "Event parameter 'on' must have a string value, not a boolean"),
    ]


def test_it_reports_every_metadata_problem_in_one_error():
    with pytest.raises(MetadataError) as exc_info:
        parse_import_metadata(json.dumps({"name": "ab", "isSchedulingEnabled": 1}))
    err = exc_info.value
    assert err.field == "metadata"
    assert err.message.startswith("import.metadata.json has 2 problems: name: Function name 'ab' is 2 characters")
    assert "isSchedulingEnabled: must be true or false, not a number" in err.message


def test_a_single_metadata_problem_names_its_field():
    with pytest.raises(MetadataError) as exc_info:
        parse_import_metadata('{"schedule": {"entries": [{"timeSinceMidnightMs": 1, "daysOfWeek": []}]}}')
    assert exc_info.value.field == "metadata.schedule.entries[0].daysOfWeek"


# --------------------------------------------------------------------------- names and parameters


def test_it_accepts_and_strips_a_function_name():
    assert validate_function_name("  my_fn-1 ") == "my_fn-1"
    assert validate_function_name("a") == "a"
    assert validate_function_name("a" * 35) == "a" * 35


@pytest.mark.parametrize(
    "name, says",
    [
        ("", "Function name is required: 1-35 characters, only letters"),
        ("a" * 36, "is 36 characters long; use 1-35 characters"),
        ("my fn!", "contains ' ', '!'; use 1-35 characters, only letters, digits, '_' and '-'"),
        (None, "Function name must be text"),
    ],
)
def test_it_rejects_bad_function_names(name, says):
    err = error_of(validate_function_name, name)
    assert err.field == "name"
    assert says in err.message


def test_it_accepts_event_parameters():
    assert validate_event_parameters([(" region ", "us"), ("empty", "")]) == {"region": "us", "empty": ""}


def test_it_rejects_bad_event_parameters_naming_each_one():
    err = error_of(validate_event_parameters, [
        ("region", "us"), ("region", "eu"), ("  ", "x"), ("SamsaraFunctionCorrelationId", "x"), ("limit", 5),
        ("n" * 129, "x"),
    ])
    assert err.field == "params"
    assert err.errors == [
        ("params[1]", "Event parameter 'region' appears more than once; names must be unique"),
        ("params[2]", "Event parameter name is empty"),
        ("params[3]", "Event parameter name 'SamsaraFunctionCorrelationId' is reserved: the platform sets it "
                      "on every run (the trigger source and the correlation id); choose another name"),
        ("params[4]", "Event parameter 'limit' must have a string value, not a number"),
        ("params[5]", "Event parameter name is 129 characters long; the limit is 128"),
    ]
    assert "'region' appears more than once" in err.message and "'limit' must have a string value" in err.message


def test_it_rejects_duplicate_secret_names():
    assert validate_secret_names(["A", "B"]) == ("A", "B")
    err = error_of(validate_secret_names, ["A", "A"])
    assert err.field == "secrets" and "Secret 'A' appears more than once" in err.message


# --------------------------------------------------------------------------- extract_bundle

BUNDLE = {"function.py": HANDLER, "lib/": "", "lib/pkg/util.py": "X = 1\n", "data/big.bin": b"\0" * 100_000}


def test_it_extracts_with_fixed_permissions(tmp_path):
    exec_info = zipfile.ZipInfo("run.sh")
    exec_info.external_attr = (stat.S_IFREG | 0o4777) << 16
    fileobj = make_zip(list(BUNDLE.items()) + [(exec_info, "#!/bin/sh\n")])
    dest = tmp_path / "versions" / "v1"
    extract_bundle(fileobj, dest)
    assert (dest / "function.py").read_text() == HANDLER
    assert (dest / "lib/pkg/util.py").read_text() == "X = 1\n"
    assert (dest / "data/big.bin").stat().st_size == 100_000
    for path in [dest, *dest.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    assert [p.name for p in dest.parent.iterdir()] == ["v1"]  # no temporary directory left over
    assert fileobj.tell() == 0


def test_extracting_again_does_nothing(tmp_path):
    dest = tmp_path / "v1"
    extract_bundle(make_zip(BUNDLE), dest)
    extract_bundle(make_zip({"other.py": "Y = 2\n"}), dest)
    assert not (dest / "other.py").exists()
    assert (dest / "function.py").exists()


def test_a_failed_extraction_leaves_nothing_behind(tmp_path):
    payload = b"print('hello')\n" * 50
    data = bytearray(make_zip({"function.py": HANDLER, "data.py": payload}, compression=zipfile.ZIP_STORED).getvalue())
    data[data.index(payload) + 10] ^= 0xFF
    dest = tmp_path / "v1"
    err = error_of(extract_bundle, io.BytesIO(bytes(data)), dest)
    assert "bad CRC-32" in err.message
    assert list(tmp_path.iterdir()) == []


def test_extraction_refuses_zip_slip(tmp_path):
    err = error_of(extract_bundle, make_zip([("function.py", HANDLER), ("../evil.py", "x")]), tmp_path / "v1")
    assert "'..'" in err.message
    assert list(tmp_path.iterdir()) == []


def test_extraction_enforces_the_real_uncompressed_size(tmp_path):
    fileobj = lying_zip("bomb.bin", real_size=3 * 1024 * 1024, declared_size=100)
    err = error_of(extract_bundle, fileobj, tmp_path / "v1", limits=Limits(max_uncompressed_bytes=1024 * 1024))
    assert "larger than 1 MB when uncompressed" in err.message
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_extractor_that_loses_the_race_keeps_the_winners_tree(tmp_path, monkeypatch):
    dest = tmp_path / "v1"
    real_populate = archive._populate

    def populate_while_another_finishes(zf, members, root, limits):
        real_populate(zf, members, root, limits)
        monkeypatch.setattr(archive, "_populate", real_populate)
        extract_bundle(make_zip({"winner.py": HANDLER}), dest)  # the other extractor renames first

    monkeypatch.setattr(archive, "_populate", populate_while_another_finishes)
    extract_bundle(make_zip(BUNDLE), dest)
    assert [p.name for p in dest.iterdir()] == ["winner.py"]
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_concurrent_extractors_all_see_a_complete_tree(tmp_path):
    data = make_zip(BUNDLE).getvalue()
    dest = tmp_path / "v1"
    barrier = threading.Barrier(6)
    seen, failures = [], []

    def extract():
        barrier.wait()
        try:
            extract_bundle(io.BytesIO(data), dest)
            seen.append(sorted(str(p.relative_to(dest)) for p in dest.rglob("*")))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=extract) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    expected = ["data", "data/big.bin", "function.py", "lib", "lib/pkg", "lib/pkg/util.py"]
    assert seen == [expected] * 6
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]



def test_import_metadata_refuses_secret_names_the_vault_would_refuse():
    with pytest.raises(MetadataError) as caught:
        parse_import_metadata('{"name": "abc", "secretsKeys": ["GOOD_key.1-x", "has space", "slash/no"]}')
    paths = [path for path, _ in caught.value.errors]
    assert paths == ["secretsKeys[1]", "secretsKeys[2]"]
    assert "may only contain letters" in caught.value.errors[0][1]
