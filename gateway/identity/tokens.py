"""The gateway's own HS256 tokens: dev tokens (dev and test only) and purpose-scoped tokens.

Each kind has its own issuer, audience and key file in the secrets folder:

| kind   | `iss`         | `aud`            | key file                 | production |
|--------|---------------|------------------|--------------------------|------------|
| dev    | `gateway-dev` | `gateway-dev`    | `dev-token-signing-key`  | refused    |
| scoped | `gateway`     | `gateway-scoped` | `token-signing-key`      | allowed    |

The Authenticator picks the verifier from the unverified `iss` alone, and each verifier
accepts exactly one algorithm, so an IdP token can never meet an HS key and a gateway
token can never meet an IdP's public key. Keys are generated on first use in dev and
test; production must provision `token-signing-key` (and never reads the dev key).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gateway.errors import ConfigurationError, ValidationFailed
from gateway.identity.principal import SUBJECT
from gateway.policy.loader import PolicySet
from gateway.policy.locate import did_you_mean
from gateway.secrets import SecretStore
from gateway.settings import Settings

__all__ = [
    "DEV",
    "LEEWAY",
    "MAX_SCOPED_TTL",
    "RESERVED_ISSUERS",
    "SCOPED",
    "GatewayTokenKind",
    "issue_dev_token",
]

ALGORITHM = "HS256"
LEEWAY = timedelta(seconds=30)
MAX_SCOPED_TTL = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class GatewayTokenKind:
    """One kind of gateway-signed token: its issuer, audience and signing-key reference."""

    issuer: str
    audience: str
    key_reference: str

    def sign(self, store: SecretStore, claims: Mapping[str, Any], expires_at: datetime) -> str:
        """A signed token carrying `claims`, valid from now until `expires_at`."""
        key = store.key(self.key_reference)
        now = int(datetime.now(UTC).timestamp())
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(12),
        }
        return jwt.encode(payload, key.secret, algorithm=ALGORITHM, headers={"kid": key.key_id})

    def verify(self, store: SecretStore, token: str, leeway: timedelta) -> dict[str, Any]:
        """The verified claims; jwt.PyJWTError when the token is not one of this kind."""
        return jwt.decode(
            token,
            store.key(self.key_reference).secret,
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            leeway=leeway,
            options={
                "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                "strict_aud": True,
                "enforce_minimum_key_length": True,
            },
        )


DEV = GatewayTokenKind("gateway-dev", "gateway-dev", "dev-token-signing-key")
SCOPED = GatewayTokenKind("gateway", "gateway-scoped", "token-signing-key")
RESERVED_ISSUERS = frozenset({DEV.issuer, SCOPED.issuer})


def issue_dev_token(
    settings: Settings,
    subject: str,
    roles: Sequence[str],
    ttl: timedelta,
    purpose: str | None = None,
    features: Sequence[str] | None = None,
    *,
    policies: PolicySet | None = None,
) -> str:
    """A development token for any subject and roles; ConfigurationError in production.

    Roles and purpose are checked against `policies` when given; in any case unknown
    roles are ignored when the token is used.
    """
    if settings.is_production:
        raise ConfigurationError("dev tokens are disabled in production")
    if not SUBJECT.fullmatch(subject):
        raise ValidationFailed("a dev token subject is letters, digits and _.@- (up to 200)")
    if isinstance(roles, str) or not roles:
        raise ValidationFailed("a dev token needs at least one role")
    if ttl <= timedelta(0):
        raise ValidationFailed("ttl must be positive")
    if policies is not None:
        org = policies.organisation
        for role in roles:
            if role not in org.roles:
                raise ValidationFailed(f"unknown role '{role}'{did_you_mean(role, org.roles)}")
        if purpose is not None and purpose not in org.purposes:
            raise ValidationFailed(
                f"unknown purpose '{purpose}'{did_you_mean(purpose, org.purposes)}"
            )
    claims: dict[str, Any] = {"sub": subject, "roles": sorted(set(roles))}
    if purpose is not None:
        claims["purpose"] = purpose
    if features is not None:
        if isinstance(features, str):
            raise ValidationFailed("features is a list of feature-view names")
        claims["features"] = sorted(set(features))
    return DEV.sign(SecretStore(settings), claims, datetime.now(UTC) + ttl)
