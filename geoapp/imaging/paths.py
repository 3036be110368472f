"""iter_image_paths: expanding files, folders and glob patterns into image paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

#: File extensions (lower case, with the leading dot, as ``Path.suffix``
#: gives them) that :func:`iter_image_paths` picks up when scanning folders.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png", ".gif", ".webp", ".bmp",
        ".tif", ".tiff",
        ".heic", ".heif", ".avif",
        ".ppm", ".pgm", ".pbm",
    }
)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _wanted_in_folder(path: Path) -> bool:
    """Folder scans pick up image extensions and extension-less files."""
    suffix = path.suffix.lower()
    return suffix == "" or suffix in IMAGE_EXTENSIONS


def _scan_folder(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirnames, filenames in os.walk(folder):
        # Prune in place so os.walk skips hidden folders (.git, .thumbnails...).
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d)) if recursive else []
        for filename in filenames:
            if _is_hidden(filename):
                continue
            path = Path(root) / filename
            if _wanted_in_folder(path) and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.parts)


def _has_glob_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def iter_image_paths(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into a de-duplicated list of paths.

    * An existing file is always included, whatever its extension, so that the
      caller can report a clear error for it.
    * A folder contributes its regular files (recursively unless
      ``recursive=False``), sorted, skipping hidden files and folders and
      keeping only :data:`IMAGE_EXTENSIONS` and extension-less files.
    * A glob pattern (``*``, ``?``, ``[``, ``**``) contributes every file it
      matches, like a shell would; matched folders are scanned as above.
    * A missing path, or a pattern matching nothing, is returned as-is so the
      caller reports "no such file" for it.  Nothing here raises for bad input.

    Order is preserved and duplicates (same absolute path) are dropped.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # a single path is a common slip; accept it
    result: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            result.append(path)

    for item in inputs:
        text = os.fspath(item)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        expanded = os.path.expanduser(text)
        path = Path(expanded)
        if path.is_dir():
            for found in _scan_folder(path, recursive):
                add(found)
        elif path.exists() or path.is_symlink() or not _has_glob_magic(text):
            add(path)
        else:
            matches = sorted(glob.glob(expanded, recursive=True), key=lambda m: Path(m).parts)
            if not matches:
                add(path)
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    for found in _scan_folder(match_path, recursive):
                        add(found)
                else:
                    add(match_path)
    return result
