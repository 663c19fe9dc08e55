"""Authenticate an `Authorization` header into a Principal, against the policy in force.

    Authorization: Bearer gw_<key_id>_<secret>     API key (also `ApiKey gw_...`)
    Authorization: Bearer <JWT>                    IdP, dev or scoped token

A JWT goes to exactly one verifier, chosen by its unverified `iss`: `gateway` (scoped,
HS256), `gateway-dev` (dev, HS256, refused in production) or a configured identity
provider (only that provider's asymmetric algorithms, a key from its JWKS by `kid`, of
the type the algorithm needs). Anything else is 'unknown issuer'. Failures raise
AuthenticationFailed with a short, fixed reason that never quotes the credential.

Roles: API keys name a policy principal and a subset of its roles; IdP tokens map
claims through the provider's `role_map`; dev tokens name any roles. In every case only
roles the current policy defines count, and none left is 'no roles'.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from gateway.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    ValidationFailed,
)
from gateway.identity.api_keys import ApiKeyInfo, ApiKeyStore, looks_like_api_key
from gateway.identity.jwks import JwksSource, key_matches_algorithm, open_jwks
from gateway.identity.principal import Principal, resolve_roles
from gateway.identity.tokens import (
    ALGORITHM,
    DEV,
    LEEWAY,
    MAX_SCOPED_TTL,
    RESERVED_ISSUERS,
    SCOPED,
    GatewayTokenKind,
)
from gateway.policy.loader import PolicySet
from gateway.policy.locate import did_you_mean
from gateway.policy.organisation import IdentityProvider, purpose_covers
from gateway.secrets import SecretStore
from gateway.settings import Settings

__all__ = ["MAX_HEADER", "Authenticator"]

MAX_HEADER = 8192
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired token"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "invalid audience"),
    (jwt.InvalidIssuerError, "invalid issuer"),
    (jwt.InvalidSignatureError, "invalid signature"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidKeyError, "unusable key"),
    (InvalidSubjectError, "invalid subject"),
    (jwt.DecodeError, "malformed token"),
)


@dataclass(frozen=True, slots=True)
class _Provider:
    config: IdentityProvider
    keys: JwksSource


@dataclass(frozen=True, slots=True)
class _State:
    """Everything one request needs from the policy, swapped as a whole on reload."""

    policies: PolicySet
    providers: Mapping[str, _Provider]


class Authenticator:
    """Turns credentials into Principals; swap policies atomically with `reload`."""

    def __init__(
        self,
        policies: PolicySet,
        settings: Settings,
        api_keys: ApiKeyStore,
        *,
        leeway: timedelta = LEEWAY,
        jwks_timeout: float = 5.0,
    ) -> None:
        self._settings = settings
        self._api_keys = api_keys
        self._leeway = leeway
        self._jwks_timeout = jwks_timeout
        self._secrets = SecretStore(settings)
        self._jwks: dict[str, JwksSource] = {}
        self._jwks_lock = threading.Lock()
        self._state = self._build(policies)

    @property
    def policies(self) -> PolicySet:
        """The policy set in force."""
        return self._state.policies

    @property
    def api_keys(self) -> ApiKeyStore:
        """The API key store."""
        return self._api_keys

    def with_policies(self, policies: PolicySet) -> Authenticator:
        """A new Authenticator for `policies`, sharing keys and caches; this one is unchanged."""
        clone = copy.copy(self)
        clone._state = self._build(policies)
        return clone

    def reload(self, policies: PolicySet) -> None:
        """Switch to `policies` in one step; on ConfigurationError the old policy stays."""
        self._state = self._build(policies)

    def authenticate(self, authorization: str | None) -> Principal:
        """The Principal behind an `Authorization` header value, or AuthenticationFailed."""
        state = self._state  # one policy snapshot for the whole request
        scheme, credential = _parse_header(authorization)
        if scheme == "apikey" or looks_like_api_key(credential):
            info = self._api_keys.authenticate(credential)
            roles, clearance = _key_roles(state, info)
            return Principal(
                subject=info.subject,
                roles=roles,
                clearance=clearance,
                auth_method="api_key",
                credential_id=info.key_id,
                expires_at=info.expires_at,
            )
        try:
            header = jwt.get_unverified_header(credential)
            unverified = jwt.decode(credential, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthenticationFailed("malformed token") from None
        issuer = unverified.get("iss")
        if issuer == SCOPED.issuer:
            return self._scoped(state, self._verify_own(SCOPED, credential, header))
        if issuer == DEV.issuer:
            if self._settings.is_production:
                raise AuthenticationFailed("dev tokens are disabled in production")
            return _dev(state, self._verify_own(DEV, credential, header))
        provider = state.providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise AuthenticationFailed("unknown issuer")
        return self._idp(state, provider, credential, header)

    def issue_scoped_token(
        self,
        principal: Principal,
        purpose: str,
        features: Sequence[str] | None,
        ttl: timedelta,
    ) -> str:
        """A short-lived token bound to `purpose` (and `features`), for an authenticated caller.

        The token only narrows: it keeps the caller's roles that may pursue `purpose`,
        never outlives the caller's credential, and a bound caller can only bind to a
        sub-purpose of its purpose and a subset of its features (which it inherits when
        `features` is None). Tokens exchanged from an API key die with the key.
        """
        state = self._state
        org = state.policies.organisation
        if purpose not in org.purposes:
            raise ValidationFailed(
                f"unknown purpose '{purpose}'{did_you_mean(purpose, org.purposes)}"
            )
        if not timedelta(0) < ttl <= MAX_SCOPED_TTL:
            raise ValidationFailed(f"ttl must be positive and at most {MAX_SCOPED_TTL}")
        if principal.bound_purpose is not None and not purpose_covers(
            principal.bound_purpose, purpose
        ):
            raise AccessDenied(f"the credential is bound to purpose '{principal.bound_purpose}'")
        roles = [
            role
            for role in principal.roles
            if role in org.roles
            and any(purpose_covers(p, purpose) for p in org.roles[role].purposes)
        ]
        if not roles:
            raise AccessDenied(f"no role of '{principal.subject}' may pursue purpose '{purpose}'")
        bound = _bound_features(state.policies, principal, features)
        now = datetime.now(UTC)
        expires_at = now + ttl
        if principal.expires_at is not None:
            expires_at = min(expires_at, principal.expires_at)
        if expires_at <= now:
            raise AuthenticationFailed("expired token")
        claims: dict[str, Any] = {
            "sub": principal.subject,
            "roles": roles,
            "purpose": purpose,
            "src": principal.exchanged_from or principal.credential,
        }
        if principal.issuer is not None:
            claims["sub_iss"] = principal.issuer
        if bound is not None:
            claims["features"] = list(bound)
        return SCOPED.sign(self._secrets, claims, expires_at)

    # -- internals -----------------------------------------------------------------------

    def _build(self, policies: PolicySet) -> _State:
        providers: dict[str, _Provider] = {}
        for idp in policies.organisation.identity_providers:
            if idp.issuer in RESERVED_ISSUERS:
                raise ConfigurationError(
                    f"identity provider issuer '{idp.issuer}' is reserved for the gateway's "
                    "own tokens"
                )
            if idp.issuer in providers:
                raise ConfigurationError(f"identity provider '{idp.issuer}' is configured twice")
            providers[idp.issuer] = _Provider(idp, self._source(idp.jwks))
        if self._settings.is_production:  # fail the start or reload, not the first request
            for provider in providers.values():
                provider.keys.check()
        return _State(policies, MappingProxyType(providers))

    def _source(self, location: str) -> JwksSource:
        with self._jwks_lock:
            if location not in self._jwks:
                self._jwks[location] = open_jwks(location, timeout=self._jwks_timeout)
            return self._jwks[location]

    def _verify_own(
        self, kind: GatewayTokenKind, token: str, header: Mapping[str, Any]
    ) -> dict[str, Any]:
        if header.get("alg") != ALGORITHM:
            raise AuthenticationFailed("unsupported algorithm")
        try:
            return kind.verify(self._secrets, token, self._leeway)
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(_reason(exc)) from None

    def _idp(
        self, state: _State, provider: _Provider, token: str, header: Mapping[str, Any]
    ) -> Principal:
        config = provider.config
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise AuthenticationFailed("unsupported algorithm")
        key = provider.keys.get(kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise AuthenticationFailed("unknown key")
        if not key_matches_algorithm(key, alg):
            raise AuthenticationFailed("key does not match algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=config.audience,
                issuer=config.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(_reason(exc)) from None
        subject = _subject(claims, config.subject_claim)
        mapped = (
            role
            for value in _claim_values(claims, config.roles_claim)
            for role in config.role_map.get(value, ())
        )
        roles, clearance = resolve_roles(state.policies.organisation, mapped)
        jti = claims.get("jti")
        if isinstance(jti, str) and 0 < len(jti) <= 200 and jti.isprintable():
            credential_id = jti
        else:
            credential_id = "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        return Principal(
            subject=subject,
            roles=roles,
            clearance=clearance,
            auth_method="jwt",
            credential_id=credential_id,
            expires_at=_expiry(claims["exp"]),
            issuer=config.issuer,
        )

    def _scoped(self, state: _State, claims: dict[str, Any]) -> Principal:
        source = claims.get("src")
        purpose = claims.get("purpose")
        subject_issuer = claims.get("sub_iss")
        if not isinstance(source, str) or not isinstance(purpose, str):
            raise AuthenticationFailed("malformed token")
        if subject_issuer is not None and not isinstance(subject_issuer, str):
            raise AuthenticationFailed("malformed token")
        names = _strings(claims.get("roles"))
        method, _, credential_id = source.partition(":")
        if method == "dev_token" and self._settings.is_production:
            raise AuthenticationFailed("dev tokens are disabled in production")
        if method == "api_key":  # revoking the key revokes what was exchanged for it
            info = self._api_keys.get(credential_id)
            if info is None:
                raise AuthenticationFailed("revoked key")
            self._api_keys.check_active(info)
            held = set(_key_roles(state, info)[0])
            names = tuple(name for name in names if name in held)
        roles, clearance = resolve_roles(state.policies.organisation, names)
        return Principal(
            subject=_subject(claims, "sub"),
            roles=roles,
            clearance=clearance,
            auth_method="scoped_token",
            credential_id=str(claims["jti"]),
            expires_at=_expiry(claims["exp"]),
            issuer=subject_issuer,
            bound_purpose=purpose,
            bound_features=_optional_strings(claims.get("features")),
            exchanged_from=source,
        )


def _dev(state: _State, claims: dict[str, Any]) -> Principal:
    purpose = claims.get("purpose")
    if purpose is not None and not isinstance(purpose, str):
        raise AuthenticationFailed("malformed token")
    roles, clearance = resolve_roles(state.policies.organisation, _strings(claims.get("roles")))
    return Principal(
        subject=_subject(claims, "sub"),
        roles=roles,
        clearance=clearance,
        auth_method="dev_token",
        credential_id=str(claims["jti"]),
        expires_at=_expiry(claims["exp"]),
        issuer=DEV.issuer,
        bound_purpose=purpose,
        bound_features=_optional_strings(claims.get("features")),
    )


def _parse_header(authorization: str | None) -> tuple[str, str]:
    if authorization is None or not authorization.strip():
        raise AuthenticationFailed("missing credentials")
    if len(authorization) > MAX_HEADER:
        raise AuthenticationFailed("malformed authorization header")
    parts = authorization.split()
    if len(parts) != 2:
        raise AuthenticationFailed("malformed authorization header")
    scheme = parts[0].lower()
    if scheme not in ("bearer", "apikey"):
        raise AuthenticationFailed("unsupported authorization scheme")
    return scheme, parts[1]


def _key_roles(state: _State, info: ApiKeyInfo) -> tuple[tuple[str, ...], str]:
    org = state.policies.organisation
    principal = org.principals.get(info.subject)
    if principal is None:
        raise AuthenticationFailed("unknown principal")
    return resolve_roles(org, (role for role in info.roles if role in principal.roles))


def _bound_features(
    policies: PolicySet, principal: Principal, features: Sequence[str] | None
) -> tuple[str, ...] | None:
    if features is None:
        return principal.bound_features
    if isinstance(features, str) or not features:
        raise ValidationFailed("features, when given, name at least one feature view")
    names = tuple(sorted(set(features)))
    known = {view for dataset in policies.datasets.values() for view in dataset.features}
    for name in names:
        if name not in known:
            raise ValidationFailed(f"unknown feature view '{name}'{did_you_mean(name, known)}")
    if principal.bound_features is not None and not set(names) <= set(principal.bound_features):
        raise AccessDenied("the credential is bound to fewer features")
    return names


def _claim_values(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A roles claim as strings: a list, or a space-separated string; dotted names nest."""
    value: Any = claims.get(name)
    if name not in claims:  # `realm_access.roles`; a literal key with dots wins
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise AuthenticationFailed("malformed roles claim")


def _subject(claims: Mapping[str, Any], name: str) -> str:
    subject = claims.get(name)
    if subject is None or subject == "":
        raise AuthenticationFailed("missing subject")
    if not isinstance(subject, str) or len(subject) > 255 or not subject.isprintable():
        raise AuthenticationFailed("invalid subject")  # no control characters reach the logs
    return subject


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthenticationFailed("malformed token")
    return tuple(value)


def _optional_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _strings(value)


def _expiry(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise AuthenticationFailed("malformed token") from None


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return next((reason for cls, reason in _REASONS if isinstance(exc, cls)), "invalid token")
