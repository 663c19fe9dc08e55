"""Secret keys by reference: policies name a key (`key: customer-key`), this module finds it.

A secret is a file `<secrets_dir>/<reference>` holding the key as hex (at least 32 bytes
of key material). In dev and test environments a missing key is generated (mode 0600);
in production a missing key is a ConfigurationError. Only key ids reach logs and
metadata: `<reference>@<first 8 hex of SHA-256(key)>`, which changes when a key rotates.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.settings import Settings
from masking.base import KeyMaterial

__all__ = ["SecretStore", "key_id"]

_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
MIN_KEY_BYTES = 32


def key_id(reference: str, secret: bytes) -> str:
    """The recordable id of a key: its reference and a short fingerprint."""
    return f"{reference}@{hashlib.sha256(secret).hexdigest()[:8]}"


class SecretStore:
    """Resolves secret references to key material from the secrets folder."""

    def __init__(self, settings: Settings) -> None:
        self._folder = settings.secrets
        self._generate = not settings.is_production
        self._cache: dict[str, KeyMaterial] = {}

    @property
    def folder(self) -> Path:
        """The folder that holds the secret files."""
        return self._folder

    def key(self, reference: str) -> KeyMaterial:
        """The key material for `reference`; generated in dev/test when missing."""
        if reference in self._cache:
            return self._cache[reference]
        if not _REFERENCE.match(reference):
            raise ConfigurationError(f"invalid secret reference {reference!r}")
        path = self._folder / reference
        if not path.exists():
            if not self._generate:
                raise ConfigurationError(
                    f"secret {reference!r} not found in {self._folder} "
                    "(production never generates keys)"
                )
            self._write_new(path)
        secret = self._read(path, reference)
        material = KeyMaterial(key_id(reference, secret), secret)
        self._cache[reference] = material
        return material

    def keys(self, references: set[str] | frozenset[str]) -> dict[str, KeyMaterial]:
        """Key material for several references."""
        return {ref: self.key(ref) for ref in sorted(references)}

    def rotate(self, reference: str) -> KeyMaterial:
        """Replace the key of `reference` with a new random one (the old file is kept as .old)."""
        path = self._folder / reference
        if path.exists():
            path.replace(path.with_name(f"{reference}.old"))
        self._write_new(path)
        self._cache.pop(reference, None)
        return self.key(reference)

    def _write_new(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")

    @staticmethod
    def _read(path: Path, reference: str) -> bytes:
        try:
            text = path.read_text(encoding="ascii").strip()
            secret = bytes.fromhex(text)
        except (OSError, ValueError, UnicodeDecodeError):
            raise ConfigurationError(
                f"secret {reference!r} at {path} is not readable hex"
            ) from None
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"secret {reference!r} is {len(secret)} bytes; at least "
                f"{MIN_KEY_BYTES} are required"
            )
        return secret
