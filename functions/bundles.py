"""Checks on uploaded Function code bundles (.zip files).

Pure Python on purpose (no Django): the upload form, the REST API, the
``deploy_function`` command and the worker all call these, and the tests run
in milliseconds.

Every public function takes a seekable binary file-like object (a Django
``UploadedFile``, ``open(path, "rb")``, ``io.BytesIO``), rewinds it before use
and leaves it rewound, so callers can save the same object afterwards.
Problems raise ``BundleError`` whose message says what to fix.

Decisions where the contract is silent:

* Handler: the last module-level definition of the name decides (module level
  includes the bodies of top-level ``if``/``try``/``with``/``for``/``while``).
  It must be a plain ``def`` with exactly two positional parameters (positional
  only or regular; defaults allowed). ``*args``/``**kwargs`` in addition to the
  two are allowed (the call ``handler(event, context)`` still works); a
  required keyword-only parameter is rejected (the runtime never passes it).
  ``def handler(event, context, extra=None)`` is rejected: three positional
  parameters, as in the reference simulator. Decorators are not looked
  through. The file is parsed with ``ast``, never imported.
* Event parameter and secret names: at most 128 characters; event parameter
  names may not start with ``SamsaraFunction`` (the runtime's own keys).
* Only stored and deflate compression are accepted: they are what every zip
  tool writes by default, and zlib lets us bound memory while decompressing.
* Unknown keys in ``import.metadata.json`` are ignored (forward compatible);
  the handler it names is checked for format only (call ``validate_handler``
  for existence).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from runtime.sandbox.contract import HANDLER_PATTERN as HANDLER_RE

MAX_COMPRESSED_BYTES = 50 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_HANDLER_SOURCE_BYTES = 10 * 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MAX_HANDLER_LENGTH = 255
FUNCTION_NAME_MAX_LENGTH = 35
IMPORT_NAME_MIN_LENGTH = 3
MAX_PARAM_NAME_LENGTH = 128
RESERVED_PARAM_PREFIX = "SamsaraFunction"
# What the secrets vault accepts as a secret's name (the one rule, used by both).
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
METADATA_FILENAME = "import.metadata.json"
MAX_TIME_SINCE_MIDNIGHT_MS = 24 * 60 * 60 * 1000 - 1

_NAME_CHARS_RE = re.compile(r"[A-Za-z0-9_-]+")
_CHUNK = 1024 * 1024
# A generous average size of one central-directory record; it bounds how much
# table of contents zipfile will parse (and keep in memory) before we can count.
_MAX_AVG_CD_RECORD_BYTES = 512
_MAX_PATH_COMPONENT_BYTES = 255
_SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class BundleError(ValueError):
    """A problem with an uploaded bundle, with a message that tells the user what to fix."""

    def __init__(self, message: str, field: str | None = None, errors: Iterable[tuple[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors: list[tuple[str, str]] = list(errors) if errors else [(field or "", message)]

    def __str__(self) -> str:
        return self.message


class MetadataError(BundleError):
    """``import.metadata.json`` is wrong; ``errors`` lists every problem as (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        errors = list(errors)
        lines = [f"{path}: {msg}" for path, msg in errors]
        if len(errors) == 1:
            message = f"{METADATA_FILENAME}: {lines[0]}"
        else:
            message = f"{METADATA_FILENAME} has {len(errors)} problems: " + "; ".join(lines)
        field = "metadata"
        if len(errors) == 1 and errors[0][0] != METADATA_FILENAME:
            field = f"metadata.{errors[0][0]}"
        super().__init__(message, field, errors)


@dataclass(frozen=True)
class Limits:
    max_compressed_bytes: int = MAX_COMPRESSED_BYTES
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
    max_entries: int = MAX_ENTRIES
    max_handler_source_bytes: int = MAX_HANDLER_SOURCE_BYTES
    max_metadata_bytes: int = MAX_METADATA_BYTES


@dataclass(frozen=True)
class BundleInfo:
    sha256: str
    size: int
    uncompressed_size: int
    file_count: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class ScheduleEntry:
    time_since_midnight_ms: int
    days_of_week: tuple[bool, ...]  # 7 flags, index 0 = Sunday


@dataclass(frozen=True)
class ImportMetadata:
    name: str | None
    description: str
    handler: str | None
    event_parameters: dict[str, str]
    secret_names: tuple[str, ...]
    scheduling_enabled: bool
    schedule_entries: tuple[ScheduleEntry, ...]


# --------------------------------------------------------------------------- names


def handler_path(handler: str) -> tuple[str, str]:
    """``"a.b.main"`` -> ``("a/b.py", "main")``; dots and slashes before the last dot name the file."""
    if not isinstance(handler, str) or not handler:
        raise BundleError(
            "Handler is required: use path/to/module.function, e.g. 'function.main' for "
            "def main(event, context) in function.py.",
            "handler",
        )
    if len(handler) > MAX_HANDLER_LENGTH:
        raise BundleError(f"Handler is {len(handler)} characters long; the limit is {MAX_HANDLER_LENGTH}.", "handler")
    if not HANDLER_RE.fullmatch(handler):
        raise BundleError(
            f"Handler {handler!r} is not valid: use path/to/module.function (letters, digits, "
            "'_', '-', '.' and '/'), e.g. 'function.main' for def main(event, context) in function.py.",
            "handler",
        )
    module, _, function = handler.rpartition(".")
    parts = re.split(r"[./]", module)
    if any(part in ("", "..") for part in parts):
        raise BundleError(
            f"Handler {handler!r} has an empty path segment (a leading '/', '//' or '..'): name the "
            "file relative to the bundle root, e.g. 'src/app.main' for src/app.py.",
            "handler",
        )
    return "/".join(parts) + ".py", function


def validate_function_name(name: object, *, min_length: int = 1) -> str:
    """Return the stripped name, or raise BundleError(field="name") naming the rule."""
    rule = f"{min_length}-{FUNCTION_NAME_MAX_LENGTH} characters, only letters, digits, '_' and '-'"
    if not isinstance(name, str):
        raise BundleError(f"Function name must be text: {rule}.", "name")
    name = name.strip()
    if not name:
        raise BundleError(f"Function name is required: {rule}.", "name")
    bad = sorted(set(_NAME_CHARS_RE.sub("", name)))
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise BundleError(f"Function name {name!r} contains {shown}; use {rule}.", "name")
    if not min_length <= len(name) <= FUNCTION_NAME_MAX_LENGTH:
        raise BundleError(f"Function name {name!r} is {len(name)} characters long; use {rule}.", "name")
    return name


def _check_key_name(name: object, kind: str, *, reserved_prefix: str | None) -> tuple[str | None, str | None]:
    """(stripped name, None) or (None, problem)."""
    if not isinstance(name, str):
        return None, f"{kind} name must be text, not {_json_type(name)}"
    stripped = name.strip()
    if not stripped:
        return None, f"{kind} name is empty"
    if len(stripped) > MAX_PARAM_NAME_LENGTH:
        return None, f"{kind} name is {len(stripped)} characters long; the limit is {MAX_PARAM_NAME_LENGTH}"
    if reserved_prefix and stripped.startswith(reserved_prefix):
        return None, f"{kind} name {stripped!r} starts with {reserved_prefix!r}, which is reserved for the runtime's own keys"
    return stripped, None


def _check_params(pairs: Iterable[tuple[object, object]], path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    result: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for index, (name, value) in enumerate(pairs):
        key, problem = _check_key_name(name, "Event parameter", reserved_prefix=RESERVED_PARAM_PREFIX)
        where = path(index, key if key is not None else name)
        if problem:
            errors.append((where, problem))
            continue
        if key in result:
            errors.append((where, f"Event parameter {key!r} appears more than once; names must be unique"))
            continue
        if not isinstance(value, str):
            errors.append((where, f"Event parameter {key!r} must have a string value, not {_json_type(value)}"))
            continue
        result[key] = value
    return result, errors


def validate_event_parameters(pairs: list[tuple[object, object]]) -> dict[str, str]:
    """Names non-empty (stripped), unique, <= 128 chars, not ``SamsaraFunction*``; values str.

    Raises BundleError(field="params") listing every bad entry (also in ``.errors``).
    """
    result, errors = _check_params(pairs, lambda i, key: f"params[{i}]")
    if errors:
        raise BundleError("; ".join(msg for _, msg in errors) + ".", "params", errors)
    return result


def validate_secret_names(names: Iterable[object]) -> tuple[str, ...]:
    """Secret names: non-empty (stripped), unique, <= 128 chars of SECRET_NAME_RE (the vault's rule).

    Raises BundleError(field="secrets").
    """
    result: list[str] = []
    errors: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        key, problem = _check_key_name(name, "Secret", reserved_prefix=None)
        if problem is None and not SECRET_NAME_RE.match(key):
            problem = f"Secret {key!r} may only contain letters A-Z and a-z, digits, '_', '.' and '-'"
        if problem is None and key in result:
            problem = f"Secret {key!r} appears more than once; names must be unique"
        if problem:
            errors.append((f"secrets[{index}]", problem))
        else:
            result.append(key)
    if errors:
        raise BundleError("; ".join(msg for _, msg in errors) + ".", "secrets", errors)
    return tuple(result)


# --------------------------------------------------------------------------- zip reading


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    path: str  # normalised, "/"-separated, no trailing slash
    is_dir: bool


class _Budget:
    """Counts decompressed bytes across members, so lying headers cannot exceed the limit."""

    def __init__(self, limit: int, message):
        self.limit = limit
        self.used = 0
        self._message = message

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def consume(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise BundleError(self._message(), "zip")


def _limits(limits: Limits | None) -> Limits:
    if limits is not None:
        return limits
    # Read the module constants at call time so a deployment can tune them.
    return Limits(
        max_compressed_bytes=MAX_COMPRESSED_BYTES,
        max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES,
        max_entries=MAX_ENTRIES,
        max_handler_source_bytes=MAX_HANDLER_SOURCE_BYTES,
        max_metadata_bytes=MAX_METADATA_BYTES,
    )


def _human(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{n} bytes"


def _shown(name: str) -> str:
    return repr(name if len(name) <= 200 else name[:200] + "...")


def _uncompressed_message(limits: Limits) -> str:
    return (
        f"The zip is larger than {_human(limits.max_uncompressed_bytes)} when uncompressed (the limit). "
        "Remove files the function does not need (tests, caches, unused dependencies) and upload it again."
    )


def _corrupt(detail: str) -> BundleError:
    return BundleError(
        f"The zip is damaged: {detail}. Create the zip again and re-upload it (the upload may have been cut short).",
        "zip",
    )


def _file_size(fileobj) -> int:
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def _sha256(fileobj) -> str:
    fileobj.seek(0)
    digest = hashlib.sha256()
    while chunk := fileobj.read(_CHUNK):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    printable = sum(1 for b in head if b >= 0x20 or b in b"\t\r\n")
    return printable / len(head) > 0.95


def _not_a_zip(head: bytes) -> BundleError:
    if head.startswith(b"PK"):
        return _corrupt("it starts like a zip but its table of contents is missing (truncated file?)")
    kinds = [
        (head.startswith(b"\x1f\x8b"), "a gzip file (.gz or .tar.gz)"),
        (head[257:262] == b"ustar", "a tar archive"),
        (head.startswith(b"Rar!"), "a RAR archive"),
        (head.startswith(b"7z\xbc\xaf\x27\x1c"), "a 7-Zip archive"),
        (head.startswith(b"BZh"), "a bzip2 file"),
        (head.startswith(b"\xfd7zXZ\x00"), "an xz file"),
        (_looks_like_text(head), "a text file"),
    ]
    kind = next((k for match, k in kinds if match), "not a zip archive")
    what = f"is {kind}, not a .zip" if kind != "not a zip archive" else "is not a .zip archive"
    return BundleError(
        f"The uploaded file {what}. Upload your function's code as a .zip "
        "(for example made with `samsara-fn bundle` or `zip -r`).",
        "zip",
    )


def _open_zip(fileobj, limits: Limits) -> tuple[zipfile.ZipFile, int]:
    size = _file_size(fileobj)
    if size == 0:
        raise BundleError("The uploaded file is empty. Upload your function's code as a .zip file.", "zip")
    if size > limits.max_compressed_bytes:
        raise BundleError(
            f"The zip is {_human(size)} ({size:,} bytes); the limit is {_human(limits.max_compressed_bytes)} "
            "compressed. "
            "Remove files the function does not need (tests, caches, unused dependencies) and upload it again.",
            "zip",
        )
    head = fileobj.read(512)
    fileobj.seek(0)
    # Count entries from the end record before zipfile parses (and keeps in
    # memory) the whole table of contents.
    end_record = getattr(zipfile, "_EndRecData", None)
    found_end = False
    if end_record is not None:
        try:
            end = end_record(fileobj)
        except (OSError, ValueError, EOFError, struct.error):
            end = None
        if end is None:
            raise _not_a_zip(head)
        found_end = True
        entries, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
        _check_entry_count(entries, limits)
        if cd_size > limits.max_entries * _MAX_AVG_CD_RECORD_BYTES:
            raise BundleError(
                f"The zip's table of contents is {_human(cd_size)}, too large for {limits.max_entries:,} entries. "
                "Create the zip again with fewer files or shorter names.",
                "zip",
            )
    fileobj.seek(0)
    try:
        zf = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        if found_end or head.startswith(b"PK"):
            raise _corrupt(str(exc).rstrip(".")) from exc
        raise _not_a_zip(head) from exc
    except (zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError) as exc:
        raise _corrupt(f"its table of contents cannot be read ({exc})") from exc
    return zf, size


def _check_entry_count(count: int, limits: Limits) -> None:
    if count > limits.max_entries:
        raise BundleError(
            f"The zip has {count:,} entries; the limit is {limits.max_entries:,}. Remove files the function "
            "does not need (tests, caches, __pycache__ folders) and upload it again.",
            "zip",
        )


_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def _normalise(raw: str) -> str:
    """The member's path relative to the bundle root, or BundleError for anything unsafe."""
    fix = "Create the zip from inside your function's folder so that every path is relative to it."
    if "\\" in raw:
        raise BundleError(
            f"The zip contains {_shown(raw)}, a path with backslashes. Zip paths must use '/'; "
            "create the zip with a standard tool (e.g. `samsara-fn bundle` or `zip -r`).",
            "zip",
        )
    if raw.startswith("/"):
        raise BundleError(f"The zip contains {_shown(raw)}, an absolute path. {fix}", "zip")
    if _DRIVE_RE.match(raw):
        raise BundleError(f"The zip contains {_shown(raw)}, a path with a drive letter. {fix}", "zip")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleError(
            f"The zip contains {_shown(raw)}, a path with '..' that points outside the bundle. {fix}", "zip"
        )
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > _MAX_PATH_COMPONENT_BYTES:
            raise BundleError(
                f"The zip contains {_shown(raw)}, a name longer than {_MAX_PATH_COMPONENT_BYTES} bytes. Shorten it.",
                "zip",
            )
    return "/".join(parts)


def _scan(zf: zipfile.ZipFile, limits: Limits) -> list[_Member]:
    """Check every entry's metadata (no decompression); return the members in zip order."""
    infos = zf.infolist()
    _check_entry_count(len(infos), limits)
    members: list[_Member] = []
    seen: dict[str, str] = {}
    files: set[str] = set()
    dirs: set[str] = set()
    declared = 0
    for info in infos:
        raw = info.filename
        path = _normalise(raw)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise BundleError(
                f"The zip contains {_shown(raw)}, a symbolic link. Links are not allowed: "
                "put the real file in the zip instead (e.g. `zip -r` without `--symlinks`).",
                "zip",
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(
                f"The zip contains {_shown(raw)}, a special file (device, pipe or socket). "
                "Only regular files and folders are allowed.",
                "zip",
            )
        is_dir = raw.endswith("/") or kind == stat.S_IFDIR
        if not path:
            if is_dir:  # "./": the root itself
                continue
            raise BundleError(f"The zip contains an entry with an empty name ({_shown(raw)}).", "zip")
        if path in seen:
            first = seen[path]
            also = f" (also as {_shown(first)})" if first != raw else ""
            raise BundleError(
                f"The zip contains {_shown(raw)} more than once{also}. Create the zip again so each path appears once.",
                "zip",
            )
        seen[path] = raw
        if is_dir:
            dirs.add(path)
        else:
            if info.flag_bits & 0x1:
                raise BundleError(
                    f"The zip member {_shown(raw)} is encrypted. Upload a zip without a password.", "zip"
                )
            if info.compress_type not in _SUPPORTED_COMPRESSION:
                raise BundleError(
                    f"The zip member {_shown(raw)} uses compression method {info.compress_type}; only the "
                    "standard deflate (or no compression) is supported. Create the zip with `zip -r` or "
                    "`samsara-fn bundle`.",
                    "zip",
                )
            files.add(path)
            declared += info.file_size
            parts = path.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        members.append(_Member(info, path, is_dir))
    clash = sorted(files & dirs)
    if clash:
        raise BundleError(
            f"The zip contains {_shown(clash[0])} both as a file and as a folder. Create the zip again.", "zip"
        )
    if declared > limits.max_uncompressed_bytes:
        raise BundleError(_uncompressed_message(limits), "zip")
    if not files:
        raise BundleError(
            "The zip has no files in it. Add your function's code (e.g. function.py) and upload it again.", "zip"
        )
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> Iterator[bytes]:
    """Yield the member's bytes in chunks, counting real output against the budget.

    zipfile stops at the declared size, so a header that lies about the size
    would only surface as a CRC error; lifting that cap lets us count what the
    data really inflates to (each read is still bounded to one chunk).
    """
    probe = copy.copy(info)
    probe.file_size = 1 << 62
    count = 0
    try:
        with zf.open(probe) as stream:
            while chunk := stream.read(_CHUNK):
                count += len(chunk)
                budget.consume(len(chunk))
                yield chunk
    except BundleError:
        raise
    except zipfile.BadZipFile as exc:
        message = str(exc)
        if "CRC" in message:
            raise _corrupt(f"{_shown(info.filename)} fails its checksum (bad CRC-32)") from exc
        raise _corrupt(f"{_shown(info.filename)}: {message.rstrip('.')}") from exc
    except (zlib.error, EOFError, OSError, ValueError, struct.error, NotImplementedError) as exc:
        raise _corrupt(f"{_shown(info.filename)} cannot be decompressed ({exc})") from exc
    if count != info.file_size:
        raise _corrupt(
            f"{_shown(info.filename)} holds {count:,} bytes but its header says {info.file_size:,}"
        )


def _read_whole(zf: zipfile.ZipFile, member: _Member, limit: int, too_big) -> bytes:
    if member.info.file_size > limit:
        raise too_big()
    budget = _Budget(limit, lambda: too_big().message)
    try:
        return b"".join(_read_member(zf, member.info, budget))
    except BundleError as exc:
        if budget.used > limit:
            raise too_big() from exc
        raise


# --------------------------------------------------------------------------- public: bundle


def inspect_bundle(fileobj, *, limits: Limits | None = None) -> BundleInfo:
    """Check the zip (format, integrity, limits, safe paths) by streaming every member once."""
    limits = _limits(limits)
    try:
        zf, size = _open_zip(fileobj, limits)
        sha256 = _sha256(fileobj)
        with zf:
            members = _scan(zf, limits)
            budget = _Budget(limits.max_uncompressed_bytes, lambda: _uncompressed_message(limits))
            files = [m for m in members if not m.is_dir]
            for member in files:
                for _ in _read_member(zf, member.info, budget):
                    pass
        return BundleInfo(
            sha256=sha256,
            size=size,
            uncompressed_size=budget.used,
            file_count=len(files),
            files=tuple(sorted(m.path for m in files)),
        )
    finally:
        fileobj.seek(0)


def extract_bundle(fileobj, dest: Path, *, limits: Limits | None = None) -> None:
    """Extract into ``dest`` atomically; do nothing if ``dest`` exists.

    The tree is built in a temporary sibling directory and renamed into place,
    so concurrent extractors of the same version never see half a tree: the
    first rename wins and the others discard their copy. Files are 0o644,
    folders 0o755, whatever the zip says; links and unsafe paths are refused.
    """
    dest = Path(dest)
    if dest.exists():
        return
    limits = _limits(limits)
    try:
        zf, _ = _open_zip(fileobj, limits)
        with zf:
            members = _scan(zf, limits)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp: Path | None = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
            try:
                os.chmod(tmp, 0o755)
                _populate(zf, members, tmp, limits)
                try:
                    os.rename(tmp, dest)
                    tmp = None
                except OSError:
                    if not dest.exists():
                        raise
                    # Another extractor got there first; its tree is complete.
            finally:
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
    finally:
        fileobj.seek(0)


def _make_dirs(root: Path, parts: list[str]) -> None:
    current = root
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise BundleError(f"The zip contains {_shown('/'.join(parts))} under a file, not a folder.", "zip")
            continue
        os.chmod(current, 0o755)  # mkdir's mode is filtered by the umask


def _populate(zf: zipfile.ZipFile, members: list[_Member], root: Path, limits: Limits) -> None:
    budget = _Budget(limits.max_uncompressed_bytes, lambda: _uncompressed_message(limits))
    root_str = os.path.abspath(root)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for member in members:
        parts = _normalise(member.info.filename).split("/")
        target = os.path.abspath(os.path.join(root_str, *parts))
        if os.path.commonpath([root_str, target]) != root_str:  # belt and braces after _normalise
            raise BundleError(f"The zip contains {_shown(member.info.filename)}, outside the bundle.", "zip")
        if member.is_dir:
            _make_dirs(root, parts)
            continue
        _make_dirs(root, parts[:-1])
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            for chunk in _read_member(zf, member.info, budget):
                out.write(chunk)


# --------------------------------------------------------------------------- public: handler


def validate_handler(fileobj, handler: str, *, limits: Limits | None = None) -> None:
    """The handler's file exists in the bundle and defines ``def NAME(event, context)`` (parsed, never run)."""
    limits = _limits(limits)
    path, function = handler_path(handler)
    try:
        zf, _ = _open_zip(fileobj, limits)
        with zf:
            members = _scan(zf, limits)
            files = {m.path: m for m in members if not m.is_dir}
            member = files.get(path)
            if member is None:
                raise BundleError(_missing_file_message(handler, path, files), "handler")

            def too_big() -> BundleError:
                return BundleError(
                    f"{path} is larger than {_human(limits.max_handler_source_bytes)}; put the handler "
                    "in a smaller module.",
                    "handler",
                )

            source = _read_whole(zf, member, limits.max_handler_source_bytes, too_big)
    finally:
        fileobj.seek(0)
    check_handler_source(source, path, function)


def _missing_file_message(handler: str, path: str, files: dict[str, _Member]) -> str:
    message = f"Handler {handler!r} needs the file {path} at the root of the zip, but the zip has no such file."
    nested = sorted(p for p in files if p.endswith("/" + path))
    if nested:
        folder = nested[0][: -len(path) - 1]
        return (
            f"{message} It has {nested[0]}: zip the contents of the {folder!r} folder rather than the folder "
            f"itself, or set the handler to {folder}/{path[:-3]}.{handler.rpartition('.')[2]!s}."
        )
    same = [p for p in files if p.lower() == path.lower()]
    if same:
        return f"{message} Did you mean {same[0]}? Names are case-sensitive."
    return message + " Check the handler's spelling, or add the file to the zip."


_MODULE_BLOCKS = (ast.If, ast.For, ast.While, ast.Try, ast.TryStar, ast.With)


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, _MODULE_BLOCKS):
            for attr in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, attr, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                yield from _module_level(case.body)


def _names_bound(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _names_bound(elt.value if isinstance(elt, ast.Starred) else elt)


def _binding(node: ast.stmt, name: str) -> str | None:
    """How ``node`` binds ``name`` at module level, if it does."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if node.name != name:
            return None
        return {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async", ast.ClassDef: "class"}[type(node)]
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                return "lambda" if isinstance(node.value, ast.Lambda) else "assign"
            if name in _names_bound(target):
                return "assign"
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        if node.target.id == name:
            return "lambda" if isinstance(node.value, ast.Lambda) else "assign"
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
        return "assign"
    if isinstance(node, ast.Import):
        if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
            return "import"
    if isinstance(node, ast.ImportFrom):
        if any((alias.asname or alias.name) == name for alias in node.names):
            return "import"
    return None


def check_handler_source(source: bytes | str, filename: str, function: str) -> None:
    """The checks of ``validate_handler`` on one file's source (for callers that already have it)."""
    try:
        tree = ast.parse(source, filename=filename, feature_version=(3, 12))
    except SyntaxError as exc:
        where = f"{filename} line {exc.lineno}" if exc.lineno else filename
        raise BundleError(f"{where}: {exc.msg}", "handler") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise BundleError(f"{filename} cannot be parsed as Python: {exc}", "handler") from exc

    definitions: list[tuple[str, ast.stmt]] = []
    others: list[tuple[str, ast.stmt]] = []
    for node in _module_level(tree.body):
        kind = _binding(node, function)
        if kind in ("def", "async", "class", "lambda"):
            definitions.append((kind, node))
        elif kind:
            others.append((kind, node))

    wanted = f"def {function}(event, context):"
    if not definitions:
        if others:
            kind, node = others[-1]
            how = "imported" if kind == "import" else "assigned"
            raise BundleError(
                f"{filename} line {node.lineno}: {function!r} is {how} there, not defined with def. "
                f"Define `{wanted}` in {filename} (it can call the other function).",
                "handler",
            )
        raise BundleError(_missing_function_message(tree, filename, function), "handler")

    kind, node = definitions[-1]
    where = f"{filename} line {node.lineno}"
    if kind == "async":
        raise BundleError(
            f"{where}: {function!r} is an async def; the runtime calls the handler synchronously, "
            f"so define it as a plain `{wanted}`.",
            "handler",
        )
    if kind == "class":
        raise BundleError(f"{where}: {function!r} is a class; the handler must be a function: `{wanted}`.", "handler")
    if kind == "lambda":
        raise BundleError(f"{where}: {function!r} is a lambda; define it with `{wanted}`.", "handler")

    args = node.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    if len(positional) != 2:
        names = f" ({', '.join(positional)})" if positional else ""
        count = {0: "no positional parameters", 1: "1 positional parameter"}.get(
            len(positional), f"{len(positional)} positional parameters"
        )
        raise BundleError(
            f"{where}: {function!r} takes {count}{names}; the handler must take exactly two, "
            f"event and context: `{wanted}`.",
            "handler",
        )
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if default is None:
            raise BundleError(
                f"{where}: {function!r} has a required keyword-only parameter {arg.arg!r}, which the runtime "
                "never passes. Give it a default or remove it.",
                "handler",
            )


def _missing_function_message(tree: ast.Module, filename: str, function: str) -> str:
    message = f"{filename} has no top-level function named {function!r}. Define `def {function}(event, context):` in it"
    for container in ast.walk(tree):
        if isinstance(container, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in container.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == function:
                    what = "class" if isinstance(container, ast.ClassDef) else "function"
                    return (
                        f"{message}: the one at line {child.lineno} is inside {what} {container.name!r}, "
                        "and the handler must be at the top level of the file."
                    )
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    if top:
        shown = ", ".join(top[:10]) + (", ..." if len(top) > 10 else "")
        return f"{message}, or fix the handler (functions in the file: {shown})."
    return f"{message}, or fix the handler."


# --------------------------------------------------------------------------- public: import.metadata.json


def read_import_metadata(fileobj, *, limits: Limits | None = None) -> ImportMetadata | None:
    """Parse ``import.metadata.json`` at the bundle root; None when there is none."""
    limits = _limits(limits)
    try:
        zf, _ = _open_zip(fileobj, limits)
        with zf:
            members = _scan(zf, limits)
            member = next((m for m in members if m.path == METADATA_FILENAME and not m.is_dir), None)
            if member is None:
                return None

            def too_big() -> MetadataError:
                return MetadataError(
                    [(METADATA_FILENAME, f"is larger than {_human(limits.max_metadata_bytes)} (the limit)")]
                )

            raw = _read_whole(zf, member, limits.max_metadata_bytes, too_big)
    finally:
        fileobj.seek(0)
    return parse_import_metadata(raw)


class _JSONObject(dict):
    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, object]]) -> _JSONObject:
    obj = _JSONObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _key_path(prefix: str, key: object) -> str:
    return f"{prefix}[{json.dumps(key)}]" if isinstance(key, str) else f"{prefix}[{key!r}]"


def parse_import_metadata(data: bytes | str) -> ImportMetadata:
    """Validate the text of an ``import.metadata.json``; MetadataError lists every problem."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MetadataError([(METADATA_FILENAME, f"is not UTF-8 text (bad byte at offset {exc.start})")]) from exc
    try:
        doc = json.loads(data, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            [(METADATA_FILENAME, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from exc
    except RecursionError as exc:
        raise MetadataError([(METADATA_FILENAME, "is nested too deeply")]) from exc
    if not isinstance(doc, dict):
        raise MetadataError([(METADATA_FILENAME, f"must be a JSON object, not {_json_type(doc)}")])

    errors: list[tuple[str, str]] = []
    errors += [(key, "appears more than once") for key in doc.duplicates]

    def string(key: str) -> str | None:
        value = doc.get(key)
        if value is None or isinstance(value, str):
            return value
        errors.append((key, f"must be a string, not {_json_type(value)}"))
        return None

    name = string("name")
    if name is not None:
        try:
            name = validate_function_name(name, min_length=IMPORT_NAME_MIN_LENGTH)
        except BundleError as exc:
            errors.append(("name", exc.message.rstrip(".")))
            name = None

    description = string("description") or ""

    handler = string("handler")
    if handler is not None:
        try:
            handler_path(handler)
        except BundleError as exc:
            errors.append(("handler", exc.message.rstrip(".")))
            handler = None

    event_parameters: dict[str, str] = {}
    raw_params = doc.get("eventParameters")
    if isinstance(raw_params, dict):
        errors += [
            (_key_path("eventParameters", key), "appears more than once") for key in getattr(raw_params, "duplicates", [])
        ]
        event_parameters, param_errors = _check_params(
            raw_params.items(), lambda i, key: _key_path("eventParameters", key)
        )
        errors += param_errors
    elif raw_params is not None:
        errors.append(("eventParameters", f"must be an object of names to string values, not {_json_type(raw_params)}"))

    secret_names: tuple[str, ...] = ()
    raw_secrets = doc.get("secretsKeys")
    if isinstance(raw_secrets, list):
        try:
            secret_names = validate_secret_names(raw_secrets)
        except BundleError as exc:
            errors += [(path.replace("secrets[", "secretsKeys[", 1), msg) for path, msg in exc.errors]
    elif raw_secrets is not None:
        errors.append(("secretsKeys", f"must be a list of secret names, not {_json_type(raw_secrets)}"))

    scheduling_enabled = doc.get("isSchedulingEnabled")
    if scheduling_enabled is None:
        scheduling_enabled = False
    elif not isinstance(scheduling_enabled, bool):
        errors.append(("isSchedulingEnabled", f"must be true or false, not {_json_type(scheduling_enabled)}"))
        scheduling_enabled = False

    entries: list[ScheduleEntry] = []
    schedule = doc.get("schedule")
    if isinstance(schedule, dict):
        raw_entries = schedule.get("entries")
        if isinstance(raw_entries, list):
            for index, raw in enumerate(raw_entries):
                entry = _schedule_entry(raw, f"schedule.entries[{index}]", errors)
                if entry is not None:
                    entries.append(entry)
        elif raw_entries is not None:
            errors.append(("schedule.entries", f"must be a list, not {_json_type(raw_entries)}"))
    elif schedule is not None:
        errors.append(("schedule", f"must be an object with an 'entries' list, not {_json_type(schedule)}"))

    if errors:
        raise MetadataError(errors)
    return ImportMetadata(
        name=name,
        description=description,
        handler=handler,
        event_parameters=event_parameters,
        secret_names=secret_names,
        scheduling_enabled=scheduling_enabled,
        schedule_entries=tuple(entries),
    )


def _schedule_entry(raw: object, path: str, errors: list[tuple[str, str]]) -> ScheduleEntry | None:
    if not isinstance(raw, dict):
        errors.append((path, f"must be an object with timeSinceMidnightMs and daysOfWeek, not {_json_type(raw)}"))
        return None
    ok = True
    time_ms = raw.get("timeSinceMidnightMs")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int):
        errors.append((f"{path}.timeSinceMidnightMs", f"must be a whole number of milliseconds, not {_json_type(time_ms)}"))
        ok = False
    elif not 0 <= time_ms <= MAX_TIME_SINCE_MIDNIGHT_MS:
        errors.append(
            (f"{path}.timeSinceMidnightMs", f"must be between 0 and {MAX_TIME_SINCE_MIDNIGHT_MS} (got {time_ms})")
        )
        ok = False
    days = raw.get("daysOfWeek")
    if not isinstance(days, list):
        errors.append((f"{path}.daysOfWeek", f"must be a list of 7 booleans (Sunday first), not {_json_type(days)}"))
        ok = False
    elif len(days) != 7:
        errors.append((f"{path}.daysOfWeek", f"must have 7 booleans (Sunday first), not {len(days)}"))
        ok = False
    elif not all(isinstance(d, bool) for d in days):
        errors.append((f"{path}.daysOfWeek", "must contain only true or false"))
        ok = False
    elif not any(days):
        errors.append((f"{path}.daysOfWeek", "must have at least one day set to true"))
        ok = False
    if not ok:
        return None
    return ScheduleEntry(time_since_midnight_ms=time_ms, days_of_week=tuple(days))
