"""The one atomic writer: unique temporary names, clean-up on failure, and no other module renaming files into place."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from geoapp import fileio
from geoapp.fileio import atomic_write, atomic_write_path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("geoapp", "training", "benchmarks", "app.py")


def rename_calls(source: str) -> list[int]:
    """Lines that rename a file into place: ``os.replace/rename``, ``shutil.move``, or ``path.replace/rename(x)``
    (one positional argument: ``str.replace`` takes two, ``DataFrame.rename`` takes keywords)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        module_call = isinstance(owner, ast.Name) and (owner.id, name) in {
            ("os", "replace"), ("os", "rename"), ("shutil", "move")}
        path_call = name in {"replace", "rename"} and len(node.args) == 1 and not node.keywords
        if module_call or path_call:
            lines.append(node.lineno)
    return lines


def python_files():
    for root in SCANNED:
        path = REPO / root
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_the_scanner_finds_each_kind_of_rename():
    source = ("import os, shutil\nos.replace(a, b)\nos.rename(a, b)\nshutil.move(a, b)\ntmp.replace(path)\n"
              "p.rename(q)\ntext.replace('a', 'b')\nframe.rename(columns={})\n")
    assert rename_calls(source) == [2, 3, 4, 5, 6]


def test_no_module_but_fileio_renames_files_into_place():
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in python_files() if path.name != "fileio.py"
                 for line in rename_calls(path.read_text(encoding="utf-8"))]
    assert offenders == [], "write through geoapp.fileio (atomic_write / atomic_write_path / move_into_place): " \
                            + ", ".join(offenders)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    atomic_write(target, lambda handle: handle.write(b"third"), durable=True, mode=0o444)
    assert target.read_text() == "third" and (target.stat().st_mode & 0o777) == 0o444
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, "kept")

    def fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_two_writers_never_share_a_temporary_name(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def record(source, destination):
        seen.append(Path(source).name)
        real_replace(source, destination)

    monkeypatch.setattr(fileio.os, "replace", record)
    for _ in range(5):
        atomic_write_path(tmp_path / "same.bin", lambda name: Path(name).write_bytes(b"x"))
    assert len(set(seen)) == 5 and all(name.startswith(".same.bin.") for name in seen)
