"""An identity provider's signing keys: a local JWKS file or an https JWKS URL.

Only public signature keys are used: keys marked for encryption, keys without a `kid`,
symmetric (`oct`) keys and private key material are never returned. A file is re-read
when it changes (atomic replace is the way to rotate it); a URL is fetched through
PyJWKClient, which caches the set for five minutes and refetches at most every 30 s on
an unknown `kid`. Keys are never taken from token headers (`jku`, `x5u`, `jwk`).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway.errors import AuthenticationFailed, ConfigurationError

__all__ = ["FileJwks", "JwksSource", "UrlJwks", "key_matches_algorithm", "open_jwks"]

log = logging.getLogger(__name__)

_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}
_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_INFERRED = {"RSA": "RS256", "EC": ""}  # what PyJWK assumes when a JWK has no `alg`


class JwksSource(Protocol):
    """Where a provider's public keys come from."""

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The usable public signature key with id `kid`, or None."""
        ...

    def check(self) -> None:
        """Load the keys now; ConfigurationError when they cannot be loaded."""
        ...


def key_matches_algorithm(key: jwt.PyJWK, alg: str) -> bool:
    """True when `key` is the right type (and curve) for `alg`, and does not name another."""
    declared = key.algorithm_name
    if declared != alg and declared != _INFERRED.get(key.key_type or ""):
        return False
    if alg in _RSA:
        return key.key_type == "RSA" and isinstance(key.key, RSAPublicKey)
    curve = _CURVES.get(alg)
    return (
        curve is not None
        and key.key_type == "EC"
        and isinstance(key.key, EllipticCurvePublicKey)
        and key.key.curve.name == curve
    )


def _usable(key: jwt.PyJWK) -> bool:
    return (
        key.public_key_use in (None, "sig")
        and isinstance(key.key_id, str)
        and isinstance(key.key, RSAPublicKey | EllipticCurvePublicKey)
    )


class FileJwks:
    """A JWKS JSON file (relative paths resolve against the working directory)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}

    @property
    def path(self) -> Path:
        """The JWKS file."""
        return self._path

    def check(self) -> None:
        """Read the file now (ConfigurationError when missing or not a usable JWKS)."""
        self._current()

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key `kid` of the file as it is now."""
        try:
            return self._current().get(kid)
        except ConfigurationError as exc:
            log.error("JWKS unavailable: %s", exc.message)
            raise AuthenticationFailed("identity provider keys unavailable") from None

    def _current(self) -> dict[str, jwt.PyJWK]:
        try:
            stat = self._path.stat()
        except OSError:
            raise ConfigurationError(f"JWKS file {self._path} not found") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._keys = self._load()
                self._stamp = stamp
            return self._keys

    def _load(self) -> dict[str, jwt.PyJWK]:
        try:
            data: Any = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise ConfigurationError(f"JWKS file {self._path} is not readable JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ConfigurationError(f"JWKS file {self._path} has no 'keys' list")
        keys: dict[str, jwt.PyJWK] = {}
        for raw in data["keys"]:
            if isinstance(raw, dict) and "d" in raw:
                raise ConfigurationError(
                    f"JWKS file {self._path} holds private key material; publish public keys only"
                )
            try:
                key = jwt.PyJWK(raw) if isinstance(raw, dict) else None
            except jwt.PyJWTError:
                key = None
            if key is None or not _usable(key):
                continue
            if key.key_id in keys:
                raise ConfigurationError(f"JWKS file {self._path}: duplicate kid {key.key_id!r}")
            keys[str(key.key_id)] = key
        if not keys:
            raise ConfigurationError(f"JWKS file {self._path} holds no usable signature key")
        return keys


class UrlJwks:
    """An https JWKS endpoint, fetched and cached by PyJWKClient."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith("https://"):
            raise ConfigurationError(f"JWKS URL {url} must use https")
        self._url = url
        self._client = jwt.PyJWKClient(
            url, cache_jwk_set=True, lifespan=300, timeout=timeout, cooldown_duration=30
        )

    @property
    def url(self) -> str:
        """The JWKS endpoint."""
        return self._url

    def check(self) -> None:
        """Nothing to check up front: the endpoint is fetched on first use."""

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key `kid`, refetching the set (at most every 30 s) when it is not known."""
        try:
            key = self._client.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as exc:
            log.error("JWKS %s unavailable: %s", self._url, type(exc).__name__)
            raise AuthenticationFailed("identity provider keys unavailable") from None
        except jwt.PyJWKClientError:
            return None
        return key if _usable(key) else None


def open_jwks(location: str, *, timeout: float = 5.0) -> JwksSource:
    """The JWKS source for a provider's `jwks` setting: an https URL or a file path."""
    if location.startswith("https://"):
        return UrlJwks(location, timeout=timeout)
    if "://" in location:
        raise ConfigurationError(f"JWKS location {location} must be an https URL or a file path")
    return FileJwks(Path(location))
