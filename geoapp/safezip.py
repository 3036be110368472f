"""Reading untrusted zip files (torch-free, bottom layer): one rule set for every importer.

Used by the regional-build upload (``geoapp/ui/builds.py``: :func:`extract_all`) and the case-bundle
importer (``geoapp/cases/bundle.py``: :func:`check_archive` + :func:`open_member`). The rules:

- at most ``max_members`` entries; no two with the same name;
- every name is a plain relative path: no absolute path, drive letter, backslash, ``..``, NUL or
  empty part; links, devices and encrypted members are refused;
- sizes are checked from the headers before anything is written: one member at most
  ``max_member_bytes``; all together at most ``max_total_bytes``, at most ``ratio_slack_bytes +
  max_ratio x`` the archive's own size (an honest 1 GB member in an 8 MB upload is refused), and at
  most half the free disk where it is unpacked;
- sizes are enforced again while streaming, and a member whose content does not match its
  headers (a lying size, a bad checksum, a damaged stream) is one readable error, not a traceback.

Messages name the member (as stored in the zip) and never a path on this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeZipError(ValueError):
    """The zip cannot be used as given; the message names the member and what is wrong."""


@dataclass(frozen=True)
class ZipLimits:
    """Caps for one untrusted zip (the defaults are the strictest rules the importers had)."""

    max_members: int = 20_000
    max_member_bytes: int = 512 * 1024**2  # one member, uncompressed (the image loader's own limit)
    max_total_bytes: int = 4 * 1024**3  # all members together, uncompressed
    max_ratio: float = 20.0  # uncompressed total per byte of archive (photos barely compress)...
    ratio_slack_bytes: int = 64 * 1024**2  # ...beyond this much, which any archive may unpack to
    free_disk_share: float = 0.5  # never fill more than this share of the free disk
    allow_dirs: bool = True  # directory entries (a bundle has none)


def open_zip(path: str | os.PathLike, what: str = "The upload") -> zipfile.ZipFile:
    """The archive, or :class:`UnsafeZipError` saying it is not a readable zip (without the path)."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise UnsafeZipError(f"{what} is not a readable .zip file ({error}).") from error
    except (OSError, ValueError) as error:  # ValueError: a negative seek in a mangled end record
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise UnsafeZipError(f"{what} is not a readable .zip file ({reason}).") from error


def member_problem(info: zipfile.ZipInfo, limits: ZipLimits) -> str | None:
    """Why this member is refused (None: acceptable), from its name, type, flags and declared size."""
    name = info.filename
    parts = PurePosixPath(name).parts
    if (not name or "\\" in name or "\0" in name or name.startswith("/") or _DRIVE.match(name)
            or ".." in parts or any(not p.strip() for p in name.rstrip("/").split("/"))):
        return f"zip member {name!r} has an unsafe path (refused)"
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the creator recorded no Unix mode
    if info.is_dir():
        if not limits.allow_dirs or file_type not in (0, stat.S_IFDIR):
            return f"zip member {name!r} is a link or special file (refused)"
        return None
    if file_type not in (0, stat.S_IFREG):
        return f"zip member {name!r} is a link or special file (refused)"
    if info.flag_bits & 0x1:
        return f"zip member {name!r} is encrypted (refused)"
    if info.file_size > limits.max_member_bytes:
        return f"zip member {name!r} declares {info.file_size} bytes; the limit is {limits.max_member_bytes}"
    return None


def total_limit(limits: ZipLimits, archive_bytes: int, unpack_dir: str | os.PathLike | None = None) -> int:
    """The most the whole archive may unpack to: the fixed cap, the ratio to its size, the free disk."""
    allowed = min(limits.max_total_bytes, max(limits.ratio_slack_bytes, int(limits.max_ratio * archive_bytes)))
    if unpack_dir is not None:
        existing = Path(unpack_dir).resolve()
        while not existing.exists() and existing != existing.parent:  # a store not created yet
            existing = existing.parent
        allowed = min(allowed, int(shutil.disk_usage(existing).free * limits.free_disk_share))
    return allowed


def check_archive(archive: zipfile.ZipFile, archive_bytes: int, limits: ZipLimits = ZipLimits(), *,
                  unpack_dir: str | os.PathLike | None = None) -> list[zipfile.ZipInfo]:
    """Every member, checked by its headers (see the module docstring); raises :class:`UnsafeZipError`."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UnsafeZipError(f"The zip holds {len(members)} entries; at most {limits.max_members} are accepted.")
    seen: set[str] = set()
    total = 0
    allowed = total_limit(limits, archive_bytes, unpack_dir)
    for info in members:
        problem = member_problem(info, limits)
        if problem:
            raise UnsafeZipError(problem)
        key = info.filename.rstrip("/")
        if key in seen:
            raise UnsafeZipError(f"The zip contains {info.filename!r} twice (refused)")
        seen.add(key)
        total += info.file_size
        if total > allowed:
            raise UnsafeZipError(
                f"The zip unpacks to more than {allowed} bytes ({_mb(allowed)}: at most {limits.max_ratio:g} times "
                f"its own {_mb(archive_bytes)}, and no more than {limits.free_disk_share:.0%} of the free disk); "
                "refused before writing anything. Split the collection into smaller zips.")
    return members


class _CappedMember:
    """A member's stream that fails once more bytes come out than its header declared, and turns a
    damaged stream (bad CRC, truncated deflate data) into :class:`UnsafeZipError`."""

    def __init__(self, handle: BinaryIO, info: zipfile.ZipInfo) -> None:
        self.handle, self.info, self.count = handle, info, 0

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self.handle.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise UnsafeZipError(damaged(self.info.filename)) from error
        self.count += len(chunk)
        if self.count > self.info.file_size:
            raise UnsafeZipError(f"zip member {self.info.filename!r} is larger than its declared size (refused)")
        return chunk

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _CappedMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def damaged(name: str) -> str:
    return (f"zip member {name!r} is damaged or its size header is wrong (its content does not match its "
            "checksum); nothing from the zip was used")


def open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _CappedMember:
    """A capped, error-translating reader of one member (use it as a context manager)."""
    try:
        return _CappedMember(archive.open(info), info)
    except NotImplementedError as error:  # AES, lzma variants ... that zipfile cannot read
        raise UnsafeZipError(f"zip member {info.filename!r} uses a compression method this app cannot read; "
                             "zip it again with the standard (deflate) method") from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise UnsafeZipError(damaged(info.filename)) from error


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """A whole member in memory, never more than ``cap`` (or its declared size) bytes."""
    limit = min(cap, info.file_size)
    with open_member(archive, info) as handle:
        data = handle.read(limit + 1)
        if len(data) <= limit:
            handle.read(1)  # reach the end, so the CRC is checked
    if len(data) > limit:
        raise UnsafeZipError(f"zip member {info.filename!r} is larger than declared or allowed (refused)")
    return data


def extract_all(path: str | os.PathLike, target: str | os.PathLike, limits: ZipLimits = ZipLimits(),
                what: str = "The upload") -> list[Path]:
    """Unpack an untrusted zip into the (empty) folder ``target``; returns the files written.

    Everything is checked before the first byte is written; a member that turns out damaged or larger
    than declared stops the extraction with :class:`UnsafeZipError` (the caller removes ``target``)."""
    root = Path(target).resolve()
    archive = open_zip(path, what)
    written: list[Path] = []
    with archive:
        members = check_archive(archive, os.path.getsize(path), limits, unpack_dir=root)
        for info in members:
            destination = (root / info.filename).resolve()
            if not destination.is_relative_to(root) or destination == root:
                raise UnsafeZipError(f"zip member {info.filename!r} has an unsafe path (refused)")
            try:
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open_member(archive, info) as source, open(destination, "xb") as out:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
            except OSError as error:  # a name clash (file vs folder), a full disk: no server path in the text
                raise UnsafeZipError(f"zip member {info.filename!r} cannot be unpacked "
                                     f"({error.strerror or type(error).__name__})") from error
            written.append(destination)
    return written


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"
