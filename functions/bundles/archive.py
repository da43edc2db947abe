"""Open, scan and extract a bundle's zip, refusing anything unsafe before a byte lands on disk.

Decisions where the contract is silent: only stored and deflate compression
are accepted (what every zip tool writes by default, and zlib lets us bound
memory while decompressing); members are streamed with a shared budget, so a
zip bomb that lies in its headers stops at the limit.

``open_zip``, ``scan`` and ``read_whole`` are shared with the handler and
metadata modules, which each read one member of the zip.
"""

from __future__ import annotations

import copy
import hashlib
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
from typing import Iterator

from storage.sizes import format_bytes

from .errors import BundleError

MAX_COMPRESSED_BYTES = 50 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_HANDLER_SOURCE_BYTES = 10 * 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024

_CHUNK = 1024 * 1024
# A generous average size of one central-directory record; it bounds how much
# table of contents zipfile will parse (and keep in memory) before we can count.
_MAX_AVG_CD_RECORD_BYTES = 512
_MAX_PATH_COMPONENT_BYTES = 255
_SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


@dataclass(frozen=True)
class Limits:
    """Every limit a bundle check applies; the handler's and the metadata's are read through read_whole."""

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
class Member:
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


def effective_limits(limits: Limits | None) -> Limits:
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


def shown_name(name: str) -> str:
    return repr(name if len(name) <= 200 else name[:200] + "...")


def _uncompressed_message(limits: Limits) -> str:
    return (
        f"The zip is larger than {format_bytes(limits.max_uncompressed_bytes)} when uncompressed (the limit). "
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


def open_zip(fileobj, limits: Limits) -> tuple[zipfile.ZipFile, int]:
    size = _file_size(fileobj)
    if size == 0:
        raise BundleError("The uploaded file is empty. Upload your function's code as a .zip file.", "zip")
    if size > limits.max_compressed_bytes:
        raise BundleError(
            f"The zip is {format_bytes(size)} ({size:,} bytes); the limit is {format_bytes(limits.max_compressed_bytes)} "
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
                f"The zip's table of contents is {format_bytes(cd_size)}, too large for {limits.max_entries:,} entries. "
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
            f"The zip contains {shown_name(raw)}, a path with backslashes. Zip paths must use '/'; "
            "create the zip with a standard tool (e.g. `samsara-fn bundle` or `zip -r`).",
            "zip",
        )
    if raw.startswith("/"):
        raise BundleError(f"The zip contains {shown_name(raw)}, an absolute path. {fix}", "zip")
    if _DRIVE_RE.match(raw):
        raise BundleError(f"The zip contains {shown_name(raw)}, a path with a drive letter. {fix}", "zip")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleError(
            f"The zip contains {shown_name(raw)}, a path with '..' that points outside the bundle. {fix}", "zip"
        )
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > _MAX_PATH_COMPONENT_BYTES:
            raise BundleError(
                f"The zip contains {shown_name(raw)}, a name longer than {_MAX_PATH_COMPONENT_BYTES} bytes. Shorten it.",
                "zip",
            )
    return "/".join(parts)


def scan(zf: zipfile.ZipFile, limits: Limits) -> list[Member]:
    """Check every entry's metadata (no decompression); return the members in zip order."""
    infos = zf.infolist()
    _check_entry_count(len(infos), limits)
    members: list[Member] = []
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
                f"The zip contains {shown_name(raw)}, a symbolic link. Links are not allowed: "
                "put the real file in the zip instead (e.g. `zip -r` without `--symlinks`).",
                "zip",
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(
                f"The zip contains {shown_name(raw)}, a special file (device, pipe or socket). "
                "Only regular files and folders are allowed.",
                "zip",
            )
        is_dir = raw.endswith("/") or kind == stat.S_IFDIR
        if not path:
            if is_dir:  # "./": the root itself
                continue
            raise BundleError(f"The zip contains an entry with an empty name ({shown_name(raw)}).", "zip")
        if path in seen:
            first = seen[path]
            also = f" (also as {shown_name(first)})" if first != raw else ""
            raise BundleError(
                f"The zip contains {shown_name(raw)} more than once{also}. Create the zip again so each path appears once.",
                "zip",
            )
        seen[path] = raw
        if is_dir:
            dirs.add(path)
        else:
            if info.flag_bits & 0x1:
                raise BundleError(
                    f"The zip member {shown_name(raw)} is encrypted. Upload a zip without a password.", "zip"
                )
            if info.compress_type not in _SUPPORTED_COMPRESSION:
                raise BundleError(
                    f"The zip member {shown_name(raw)} uses compression method {info.compress_type}; only the "
                    "standard deflate (or no compression) is supported. Create the zip with `zip -r` or "
                    "`samsara-fn bundle`.",
                    "zip",
                )
            files.add(path)
            declared += info.file_size
            parts = path.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        members.append(Member(info, path, is_dir))
    clash = sorted(files & dirs)
    if clash:
        raise BundleError(
            f"The zip contains {shown_name(clash[0])} both as a file and as a folder. Create the zip again.", "zip"
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
            raise _corrupt(f"{shown_name(info.filename)} fails its checksum (bad CRC-32)") from exc
        raise _corrupt(f"{shown_name(info.filename)}: {message.rstrip('.')}") from exc
    except (zlib.error, EOFError, OSError, ValueError, struct.error, NotImplementedError) as exc:
        raise _corrupt(f"{shown_name(info.filename)} cannot be decompressed ({exc})") from exc
    if count != info.file_size:
        raise _corrupt(
            f"{shown_name(info.filename)} holds {count:,} bytes but its header says {info.file_size:,}"
        )


def read_whole(zf: zipfile.ZipFile, member: Member, limit: int, too_big) -> bytes:
    if member.info.file_size > limit:
        raise too_big()
    budget = _Budget(limit, lambda: too_big().message)
    try:
        return b"".join(_read_member(zf, member.info, budget))
    except BundleError as exc:
        if budget.used > limit:
            raise too_big() from exc
        raise


def inspect_bundle(fileobj, *, limits: Limits | None = None) -> BundleInfo:
    """Check the zip (format, integrity, limits, safe paths) by streaming every member once."""
    limits = effective_limits(limits)
    try:
        zf, size = open_zip(fileobj, limits)
        sha256 = _sha256(fileobj)
        with zf:
            members = scan(zf, limits)
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
    limits = effective_limits(limits)
    try:
        zf, _ = open_zip(fileobj, limits)
        with zf:
            members = scan(zf, limits)
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
                raise BundleError(f"The zip contains {shown_name('/'.join(parts))} under a file, not a folder.", "zip")
            continue
        os.chmod(current, 0o755)  # mkdir's mode is filtered by the umask


def _populate(zf: zipfile.ZipFile, members: list[Member], root: Path, limits: Limits) -> None:
    budget = _Budget(limits.max_uncompressed_bytes, lambda: _uncompressed_message(limits))
    root_str = os.path.abspath(root)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for member in members:
        parts = _normalise(member.info.filename).split("/")
        target = os.path.abspath(os.path.join(root_str, *parts))
        if os.path.commonpath([root_str, target]) != root_str:  # belt and braces after _normalise
            raise BundleError(f"The zip contains {shown_name(member.info.filename)}, outside the bundle.", "zip")
        if member.is_dir:
            _make_dirs(root, parts)
            continue
        _make_dirs(root, parts[:-1])
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            for chunk in _read_member(zf, member.info, budget):
                out.write(chunk)
