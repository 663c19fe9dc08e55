"""Identity: who is calling. API keys, OIDC bearer tokens, dev tokens and scoped tokens.

`Authenticator.authenticate(header)` returns a `Principal` (subject, roles resolved
against the policy in force, clearance, how it authenticated) or raises
AuthenticationFailed (HTTP 401) with a short reason. Authorisation is not done here.
"""

from gateway.identity.api_keys import ApiKeyInfo, ApiKeyStore, NewApiKey
from gateway.identity.authenticator import Authenticator
from gateway.identity.principal import AuthMethod, Principal, resolve_roles
from gateway.identity.tokens import (
    DEV,
    LEEWAY,
    MAX_SCOPED_TTL,
    RESERVED_ISSUERS,
    SCOPED,
    GatewayTokenKind,
    issue_dev_token,
)

__all__ = [
    "DEV",
    "LEEWAY",
    "MAX_SCOPED_TTL",
    "RESERVED_ISSUERS",
    "SCOPED",
    "ApiKeyInfo",
    "ApiKeyStore",
    "AuthMethod",
    "Authenticator",
    "GatewayTokenKind",
    "NewApiKey",
    "Principal",
    "issue_dev_token",
    "resolve_roles",
]
