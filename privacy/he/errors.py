"""The typed errors of `privacy.he`; messages never contain data values or key material."""

from __future__ import annotations

__all__ = [
    "FingerprintMismatch",
    "HeError",
    "HeKeyError",
    "HeLimitExceeded",
    "HeRangeError",
    "HeUnsupported",
    "SignatureInvalid",
    "TooFewRows",
]


class HeError(Exception):
    """Base of every error `privacy.he` raises on purpose."""


class HeKeyError(HeError):
    """A context holds the wrong kind of key: a secret key where none may be, or none where one
    is needed; or a key file is unsafe (readable by others)."""


class HeLimitExceeded(HeError):
    """The ciphertexts a request would produce exceed the configured byte limit."""

    def __init__(self, message: str, *, estimated_bytes: int, limit: int) -> None:
        super().__init__(message)
        self.estimated_bytes = estimated_bytes
        self.limit = limit


class HeRangeError(HeError, ValueError):
    """Values that the scheme cannot carry exactly (BFV) or within its capacity (CKKS)."""


class HeUnsupported(HeError, ValueError):
    """An operation the scheme, the context's keys or the packed column does not support."""


class SignatureInvalid(HeError):
    """An envelope whose signature does not verify with the given key."""


class FingerprintMismatch(HeError):
    """An envelope or a column made under another key pair than the context at hand."""


class TooFewRows(HeError):
    """An aggregate over fewer rows than the configured minimum."""

    def __init__(self, message: str, *, rows: int, min_rows: int) -> None:
        super().__init__(message)
        self.rows = rows
        self.min_rows = min_rows
