"""Gateway errors (HTTP status, stable code) for the refusals of `privacy.he`."""

from __future__ import annotations

from gateway.errors import AccessDenied, ConfigurationError, GatewayError, ValidationFailed
from privacy.he import (
    FingerprintMismatch,
    HeError,
    HeKeyError,
    HeLimitExceeded,
    SignatureInvalid,
    TooFewRows,
)

__all__ = ["HeLimitError", "HeRefused", "HeTooFewRows", "to_gateway_error"]


class HeRefused(ValidationFailed):
    """An encrypted computation the scheme, the keys or the packing cannot do (HTTP 422)."""

    code = "he-refused"


class HeTooFewRows(AccessDenied):
    """An aggregate over fewer rows than the policy's minimum (HTTP 403)."""

    code = "he-too-few-rows"


class HeLimitError(ValidationFailed):
    """Ciphertexts above `he.max_ciphertext_bytes` (HTTP 413)."""

    http_status = 413
    code = "he-limit-exceeded"


def to_gateway_error(exc: HeError) -> GatewayError:
    """The gateway error that reports `exc` (messages never hold values or key material)."""
    if isinstance(exc, TooFewRows):
        return HeTooFewRows(str(exc))
    if isinstance(exc, HeLimitExceeded):
        return HeLimitError(str(exc))
    if isinstance(exc, HeKeyError):
        return ConfigurationError(str(exc))
    if isinstance(exc, (SignatureInvalid, FingerprintMismatch)):
        return AccessDenied(str(exc))
    return HeRefused(str(exc))
