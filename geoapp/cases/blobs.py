"""Content-addressed file store: every file is kept under its own SHA-256, never a user name.

Layout: ``<root>/objects/<first two hex digits>/<sha256>``; temporary files go to
``<root>/tmp`` (same file system, so the final rename is atomic).

A write is: temp file, write, fsync, rename over the final name, fsync the folder.
Callers write files *before* committing the database row that refers to them; a crash
in between leaves an unreferenced file, which is harmless (the next write of the same
content reuses it).  Stored files are made read-only to discourage edits in place; their
hash is checked again on every read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from geoapp.fileio import atomic_write

from .errors import BundleError, EvidenceIntegrityError, StoreWriteError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and SHA256_RE.fullmatch(text) is not None


def _write_chunks(handle: BinaryIO, chunks: Iterable[bytes]) -> None:
    """Write every chunk (a seam for tests that simulate a full disk)."""
    for chunk in chunks:
        handle.write(chunk)



def write_error(root: Path, what: str, error: OSError) -> StoreWriteError:
    """A one-line explanation of why the store could not be written."""
    if error.errno == errno.ENOSPC or error.errno == errno.EDQUOT:
        reason = "the disk is full"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "it is read-only or not writable by this user"
    else:
        reason = error.strerror or str(error)
    return StoreWriteError(f"Cannot save {what} in the case store {root}: {reason}. Nothing was added.")


def write_file_atomically(path: Path, write: Callable[[BinaryIO], None], what: str, *,
                          temp_dir: Path | None = None, store_root: Path | None = None,
                          read_only: bool = False) -> None:
    """Write ``path`` through ``write(handle)`` into a temp file, fsync, rename, fsync the folder:
    a reader never sees half a file, and a failed write (or ``write`` raising) leaves no temp file.

    ``temp_dir``: where the temp file lives (default: beside ``path``; same file system either
    way, so the rename is atomic). ``store_root``: the folder an error names (default: ``path``'s).
    ``read_only``: the final file is made read-only (content-addressed files never change).
    """
    try:
        atomic_write(path, write, durable=True, temp_dir=temp_dir, mode=0o444 if read_only else None)
    except OSError as error:
        raise write_error(store_root if store_root is not None else path.parent, what, error) from error


class BlobStore:
    """Files by SHA-256 under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"

    def path_for(self, sha256: str) -> Path:
        """Where the file with this hash lives (the hash is validated: it becomes a path)."""
        if not is_sha256(sha256):
            raise EvidenceIntegrityError(f"Not a SHA-256 hex digest: {sha256!r}")
        return self.objects / sha256[:2] / sha256

    # ------------------------------------------------------------------ writing
    def put(self, data: bytes, what: str = "the file") -> str:
        """Store ``data``; returns its SHA-256.  Raises :class:`StoreWriteError`."""
        digest = sha256_bytes(data)
        if self.has_valid(digest):
            return digest
        self._atomic_write(digest, (data[i:i + _CHUNK] for i in range(0, len(data), _CHUNK)), what)
        return digest

    def put_stream(self, stream: BinaryIO, expected_sha256: str, max_bytes: int, what: str = "the file", *,
                   verify_existing: bool = False) -> int:
        """Copy ``stream`` (at most ``max_bytes``) into the store, refusing a hash mismatch.

        Returns the number of bytes.  The file only becomes visible once its hash checked
        out, so a corrupt or oversized member never lands under a valid name.  When the store
        already holds the hash, nothing is written; with ``verify_existing`` the stream is still
        read and checked (an untrusted source must not pass just because the hash is known).
        """
        if self.has_valid(expected_sha256):
            if verify_existing:
                self._verify_stream(stream, expected_sha256, max_bytes, what)
            return self.path_for(expected_sha256).stat().st_size
        state = {"size": 0, "hash": hashlib.sha256()}

        def chunks() -> Iterable[bytes]:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    return
                state["size"] += len(chunk)
                if state["size"] > max_bytes:
                    raise BundleError(f"{what} is larger than the limit of {max_bytes} bytes; refused")
                state["hash"].update(chunk)
                yield chunk

        def check() -> None:
            if state["hash"].hexdigest() != expected_sha256:
                raise EvidenceIntegrityError(f"{what}: content does not match its SHA-256 {expected_sha256}")

        self._atomic_write(expected_sha256, chunks(), what, before_rename=check)
        return int(state["size"])

    @staticmethod
    def _verify_stream(stream: BinaryIO, expected_sha256: str, max_bytes: int, what: str) -> None:
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise BundleError(f"{what} is larger than the limit of {max_bytes} bytes; refused")
            digest.update(chunk)
        if digest.hexdigest() != expected_sha256:
            raise EvidenceIntegrityError(f"{what}: content does not match its SHA-256 {expected_sha256}")

    def _atomic_write(self, digest: str, chunks: Iterable[bytes], what: str, before_rename=None) -> None:
        def write(handle: BinaryIO) -> None:
            _write_chunks(handle, chunks)
            if before_rename is not None:
                before_rename()  # e.g. the hash check: raising here leaves nothing under the name

        write_file_atomically(self.path_for(digest), write, what, temp_dir=self.tmp, store_root=self.root,
                              read_only=True)

    # ------------------------------------------------------------------ reading
    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def file_sha256(self, sha256: str) -> str | None:
        """The actual hash of the stored file (None when it is missing)."""
        path = self.path_for(sha256)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise EvidenceIntegrityError(f"Cannot read {path}: {error.strerror}") from error
        return digest.hexdigest()

    def has_valid(self, sha256: str) -> bool:
        return self.file_sha256(sha256) == sha256

    def problem(self, sha256: str) -> str | None:
        """None when the file is present and intact, else "missing" or "modified"."""
        actual = self.file_sha256(sha256)
        if actual is None:
            return "missing"
        return None if actual == sha256 else "modified"

    def read(self, sha256: str, what: str = "file") -> bytes:
        """The verified content.  Raises :class:`EvidenceIntegrityError` if missing or altered."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise EvidenceIntegrityError(
                f"{what} (sha256 {sha256[:12]}…) is missing from the case store ({path}); "
                "restore it from a backup or bundle before using it") from error
        except OSError as error:
            raise EvidenceIntegrityError(f"Cannot read {what} from {path}: {error.strerror}") from error
        actual = sha256_bytes(data)
        if actual != sha256:
            raise EvidenceIntegrityError(
                f"{what} has been modified on disk: its SHA-256 is now {actual[:12]}…, recorded "
                f"{sha256[:12]}… ({path}); refusing to use it — restore the original file")
        return data

