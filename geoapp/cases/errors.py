"""Case-store errors.  Every message is one readable line meant for an analyst."""

from __future__ import annotations


class CaseError(Exception):
    """Base class: something the analyst can act on (bad id, bad input, store problem)."""


class CaseNotFoundError(CaseError):
    """No case / evidence / claim / analysis with that id."""


class CaseInputError(CaseError, ValueError):
    """Invalid user input (empty title, unknown verdict, unresolvable place ...)."""


class DuplicateEvidenceError(CaseError):
    """The same file (same SHA-256) is already evidence in this case."""

    def __init__(self, message: str, existing_id: str) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class DuplicateCaseError(CaseError):
    """A bundle holds a case that is already in this store (same origin id)."""

    def __init__(self, message: str, existing_id: str) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class EvidenceIntegrityError(CaseError):
    """An evidence file is missing or no longer matches its recorded SHA-256."""


class StoreWriteError(CaseError):
    """The evidence folder could not be written (disk full, read-only, permissions)."""


class BundleError(CaseError):
    """A case bundle is malformed, unsafe, too large or fails its hash checks."""
