"""geoapp.safezip, rule by rule: each hostile zip is refused with a message naming the member and no path
of this machine, and nothing is written before the checks pass."""

from __future__ import annotations

import contextlib
import stat
import zipfile
from pathlib import Path

import pytest

from geoapp.safezip import UnsafeZipError, ZipLimits, check_archive, extract_all, read_member


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    encrypted = any(isinstance(info, zipfile.ZipInfo) and info.flag_bits & 0x1 for info, _ in members)
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    if encrypted:
        raw = bytearray(path.read_bytes())  # zipfile clears the "encrypted" flag: set it in both headers
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            raw[raw.find(signature) + offset] |= 0x1
        path.write_bytes(bytes(raw))
    return path


def _info(name: str, *, mode: int | None = None, flags: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.external_attr = mode << 16
    info.flag_bits |= flags
    return info


@pytest.mark.parametrize("members, refusal", [
    ([("../evil.jpg", b"x")], "unsafe path"),
    ([("/etc/evil.jpg", b"x")], "unsafe path"),
    ([("a\\..\\evil.jpg", b"x")], "unsafe path"),
    ([("C:/evil.jpg", b"x")], "unsafe path"),
    ([("a//b.jpg", b"x")], "unsafe path"),
    ([(_info("link.jpg", mode=stat.S_IFLNK | 0o777), b"/etc/passwd")], "link or special file"),
    ([(_info("fifo", mode=stat.S_IFIFO | 0o644), b"")], "link or special file"),
    ([(_info("secret.jpg", flags=0x1), b"x")], "encrypted"),
    ([("a.jpg", b"x"), ("a.jpg", b"y")], "twice"),
], ids=["dotdot", "absolute", "backslash", "drive", "empty-part", "symlink", "fifo", "encrypted", "duplicate"])
def test_hostile_members_are_refused_before_anything_is_written(tmp_path, members, refusal):
    with pytest.warns(UserWarning, match="Duplicate") if refusal == "twice" else contextlib.nullcontext():
        path = _zip(tmp_path / "hostile.zip", members)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UnsafeZipError, match=refusal) as error:
        extract_all(path, target)
    assert not any(target.iterdir()) and str(tmp_path) not in str(error.value)


def test_limits_on_count_size_and_directories(tmp_path):
    path = _zip(tmp_path / "many.zip", [(f"p{i}.jpg", b"x" * 100) for i in range(5)] + [("folder/", b"")])
    with zipfile.ZipFile(path) as archive:
        assert len(check_archive(archive, path.stat().st_size)) == 6
        with pytest.raises(UnsafeZipError, match="at most 4"):
            check_archive(archive, path.stat().st_size, ZipLimits(max_members=4))
        with pytest.raises(UnsafeZipError, match="declares 100 bytes; the limit is 99"):
            check_archive(archive, path.stat().st_size, ZipLimits(max_member_bytes=99))
        with pytest.raises(UnsafeZipError, match="link or special file"):  # a bundle has no folders
            check_archive(archive, path.stat().st_size, ZipLimits(allow_dirs=False))
        with pytest.raises(UnsafeZipError, match="larger than declared or allowed"):
            read_member(archive, archive.getinfo("p0.jpg"), cap=50)
        assert read_member(archive, archive.getinfo("p0.jpg"), cap=100) == b"x" * 100


def test_a_name_clash_is_a_readable_error_without_server_paths(tmp_path):
    path = _zip(tmp_path / "clash.zip", [("photos", b"a file"), ("photos/a.jpg", b"x")])
    with pytest.raises(UnsafeZipError, match="'photos/a.jpg' cannot be unpacked") as error:
        extract_all(path, tmp_path / "out")
    assert str(tmp_path) not in str(error.value)


def test_not_a_zip(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x05\x06" + b"\xff" * 40)
    with pytest.raises(UnsafeZipError, match="not a readable .zip") as error:
        extract_all(junk, tmp_path / "out")
    assert str(tmp_path) not in str(error.value)

