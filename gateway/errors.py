"""The gateway's one error tree: every error a user can cause or meet is a `GatewayError`.

Each class carries the HTTP status the API answers with and a stable `code` for
problem+json bodies. Messages are written for the person who caused the error and never
contain data values or secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "ConfigurationError",
    "Conflict",
    "GatewayError",
    "IngestError",
    "NotFound",
    "PolicyError",
    "PolicyIssue",
    "RequirementMissing",
    "StorageError",
    "ValidationFailed",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    http_status: int = 500
    code: str = "gateway-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(GatewayError):
    """Input that does not satisfy its declared shape (HTTP 422)."""

    http_status = 422
    code = "invalid-input"


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One problem in a policy file, located as precisely as the source allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(ValidationFailed):
    """A policy set that failed validation; carries every issue found, not only the first."""

    code = "invalid-policy"

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = sorted(issues)
        count = len(self.issues)
        lines = "\n".join(str(issue) for issue in self.issues)
        super().__init__(f"{count} policy error{'s' if count != 1 else ''}:\n{lines}")


class ConfigurationError(GatewayError):
    """Settings that are missing, malformed or unsafe for the environment."""

    code = "configuration-error"


class RequirementMissing(ConfigurationError):
    """A system requirement (Java, a Python version, a package) is absent."""

    code = "requirement-missing"


class StorageError(GatewayError):
    """A Delta table or other store could not be read or written."""

    code = "storage-error"


class Conflict(GatewayError):
    """A concurrent change or an exhausted resource prevented the operation (HTTP 409)."""

    http_status = 409
    code = "conflict"


class IngestError(GatewayError):
    """The ingest job refused to run or could not complete."""

    code = "ingest-error"


class AuthenticationFailed(GatewayError):
    """Missing, malformed, expired or revoked credentials (HTTP 401)."""

    http_status = 401
    code = "unauthenticated"


class AccessDenied(GatewayError, PermissionError):
    """The caller is known but may not take this action (HTTP 403)."""

    http_status = 403
    code = "forbidden"


class NotFound(GatewayError, LookupError):
    """A resource that does not exist, or that the caller may not know of (HTTP 404)."""

    http_status = 404
    code = "not-found"
