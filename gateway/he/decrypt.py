"""The key holder's side: verify a gateway result, then decrypt it with the secret context.

This module is for the key holder's machine; the serving process never imports it with a
secret context (it has none: `load_public_context` refuses secret keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.he.compute import HeResult
from privacy.he import Result, SecretContext, decrypt

__all__ = ["Decrypted", "decrypt_result", "read_result"]


@dataclass(frozen=True)
class Decrypted:
    """A decrypted result: a number (aggregates) or one score per entity."""

    operation: str
    rows: int
    columns: tuple[str, ...]
    value: Result
    entities: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form: `value`, or `scores` by entity."""
        out: dict[str, Any] = {
            "operation": self.operation,
            "rows": self.rows,
            "columns": list(self.columns),
        }
        if isinstance(self.value, np.ndarray):
            out["scores"] = dict(zip(self.entities, self.value.tolist(), strict=True))
        else:
            out["value"] = self.value
        return out


def read_result(path: Path) -> HeResult:
    """A result document written by `gateway he compute` or POST /v1/he/compute."""
    return HeResult.model_validate_json(path.read_bytes())


def decrypt_result(
    result: HeResult,
    secret_ctx: SecretContext,
    verify_key: Ed25519PublicKey | bytes,
    min_rows: int,
) -> Decrypted:
    """Verify the document and its envelope, refuse small aggregates, then decrypt.

    Raises SignatureInvalid (tampered document or envelope, other signer),
    FingerprintMismatch (another key pair) or TooFewRows (fewer than `min_rows` rows).
    """
    result.verify(verify_key)
    value = decrypt(result.envelope, secret_ctx, verify_key, min_rows)
    if isinstance(value, np.ndarray) and len(result.entities) != value.size:
        from privacy.he import SignatureInvalid

        raise SignatureInvalid("the result's entities and scores disagree")
    return Decrypted(result.operation, result.rows, result.columns, value, result.entities)
