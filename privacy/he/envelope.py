"""Signed result envelopes: what the gateway hands to the key holder.

An envelope carries result ciphertexts (base64) and the facts the key holder needs to judge
them: operation, the fingerprint of the key pair, rows aggregated, column names, creation
time. The gateway signs the canonical JSON of every other field with its Ed25519 key:

    b"privacy.he.envelope/v1\\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"))

where `created_at` is spelled in UTC with microseconds and "Z", and each ciphertext appears as
the SHA-256 of its base64 text (so signing costs the same for a 300 kB and a 3 MB result).
A changed row count, column list, position or ciphertext is detected before decryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from privacy.he.errors import SignatureInvalid
from privacy.he.params import Operation, Scheme

__all__ = [
    "Envelope",
    "generate_signing_key",
    "key_tag",
    "load_signing_key",
    "load_verify_key",
    "sign_envelope",
    "signing_key_bytes",
    "verify_key_bytes",
]

_DOMAIN = b"privacy.he.envelope/v1\n"
SIGNED_FIELDS = frozenset(
    {
        "version", "operation", "scheme", "context_fingerprint", "rows", "columns", "created_at",
        "ciphertexts", "chunks", "chunk_slots", "entity_rows", "ddof", "signer",
    }
)  # fmt: skip


_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")


def _digest(text: str) -> str:
    """Ciphertexts enter the signed JSON as the SHA-256 of their base64 text."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _timestamp(moment: datetime) -> str:
    """One spelling of an instant: UTC, microseconds, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key for the gateway."""
    return Ed25519PrivateKey.generate()


def signing_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte private key (store it as a secret)."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def load_signing_key(data: bytes) -> Ed25519PrivateKey:
    """A signing key from 32 raw bytes or an unencrypted PKCS#8 PEM."""
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 key")
    return key


def verify_key_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key to give the key holder."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_verify_key(data: bytes) -> Ed25519PublicKey:
    """A verification key from 32 raw bytes or a SubjectPublicKeyInfo PEM."""
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the verification key is not an Ed25519 key")
    return key


def key_tag(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Short hex SHA-256 of the raw public key: names the signer in an envelope."""
    return hashlib.sha256(verify_key_bytes(key)).hexdigest()[:16]


class Envelope(BaseModel):
    """One signed result. `ciphertexts` are base64 TenSEAL vectors:

    - sum, mean, weighted_sum: one ciphertext (the total, in every slot);
    - variance: two (sum of x, sum of x^2);
    - count: none (the count is plaintext, in `rows`);
    - linear_scores: one per chunk in `chunks`; `entity_rows` are the requested row positions
      in request order, and `positions` their (chunk, slot) = divmod(row, chunk_slots);
      `rows` is the number of distinct entities scored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    operation: Operation
    scheme: Scheme
    context_fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$")
    rows: int = Field(ge=0)
    columns: tuple[str, ...]
    created_at: AwareDatetime
    ciphertexts: tuple[str, ...]
    chunks: tuple[int, ...] = ()
    chunk_slots: int | None = Field(default=None, ge=1)
    entity_rows: tuple[int, ...] = ()
    ddof: int | None = None
    signer: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers: every field but `signature`."""
        fields = {
            "version": self.version,
            "operation": self.operation,
            "scheme": self.scheme,
            "context_fingerprint": self.context_fingerprint,
            "rows": self.rows,
            "columns": self.columns,
            "created_at": _timestamp(self.created_at),
            "ciphertexts": [_digest(text) for text in self.ciphertexts],
            "chunks": self.chunks,
            "chunk_slots": self.chunk_slots,
            "entity_rows": self.entity_rows,
            "ddof": self.ddof,
            "signer": self.signer,
        }
        text = json.dumps(
            fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
        return _DOMAIN + text.encode("ascii")

    @property
    def positions(self) -> tuple[tuple[int, int], ...]:
        """(chunk, slot) of each requested entity (linear_scores), in request order."""
        if self.chunk_slots is None:
            return ()
        size = self.chunk_slots
        return tuple(divmod(row, size) for row in self.entity_rows)

    def verify(self, verify_key: Ed25519PublicKey | bytes) -> None:
        """SignatureInvalid unless the envelope is unchanged since the key's owner signed it."""
        key = load_verify_key(verify_key) if isinstance(verify_key, bytes) else verify_key
        if self.signer != key_tag(key):
            raise SignatureInvalid("the envelope names another signing key")
        try:
            signature = base64.b64decode(self.signature, validate=True)
            key.verify(signature, self.signed_bytes())
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureInvalid("the envelope signature does not verify") from None

    def ciphertext_bytes(self) -> list[bytes]:
        """The result ciphertexts, decoded (call `verify` first)."""
        try:
            return [base64.b64decode(text, validate=True) for text in self.ciphertexts]
        except (binascii.Error, ValueError):
            raise SignatureInvalid("an envelope ciphertext is not valid base64") from None


def sign_envelope(
    *,
    operation: Operation,
    scheme: Scheme,
    fingerprint: str,
    rows: int,
    columns: Sequence[str],
    ciphertexts: Sequence[bytes],
    signing_key: Ed25519PrivateKey,
    chunks: Sequence[int] = (),
    chunk_slots: int | None = None,
    entity_rows: tuple[int, ...] = (),
    ddof: int | None = None,
    created_at: datetime | None = None,
) -> Envelope:
    """Build an envelope and sign it with the gateway's key.

    The fields come from the gateway's own computation, so the model is constructed without
    re-validation (10,000 score rows would otherwise cost ~1 ms); every envelope a key
    holder receives as JSON is validated by `Envelope.model_validate_json`.
    """
    if not _FINGERPRINT.match(fingerprint):
        raise ValueError("fingerprint must be 16 lowercase hex digits")
    unsigned = Envelope.model_construct(
        operation=operation,
        scheme=scheme,
        context_fingerprint=fingerprint,
        rows=int(rows),
        columns=tuple(columns),
        created_at=created_at or datetime.now(UTC),
        ciphertexts=tuple(base64.b64encode(blob).decode("ascii") for blob in ciphertexts),
        chunks=tuple(int(c) for c in chunks),
        chunk_slots=chunk_slots,
        entity_rows=entity_rows,
        ddof=ddof,
        signer=key_tag(signing_key),
        signature="",
    )
    signature = signing_key.sign(unsigned.signed_bytes())
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode("ascii")})
