"""Homomorphic encryption for aggregates the gateway computes but cannot read.

Roles:
- key holder: `generate_keys` -> `KeyPair.write_keys` (`<name>.secret`, mode 0600), later
  `load_secret_context` and `decrypt`;
- gateway (serving): `load_public_context` (refuses secret keys), `encrypt_column` at ingest,
  `HeEvaluator` for sum / count / mean / variance / weighted_sum / linear_scores, each
  returning an Ed25519-signed `Envelope`.

Importing this package does not import TenSEAL; it is imported when keys, ciphertexts or
results are first handled.
"""

from privacy.he.compute import HeEvaluator
from privacy.he.decrypt import Result, decrypt
from privacy.he.envelope import (
    Envelope,
    generate_signing_key,
    key_tag,
    load_signing_key,
    load_verify_key,
    sign_envelope,
    signing_key_bytes,
    verify_key_bytes,
)
from privacy.he.errors import (
    FingerprintMismatch,
    HeError,
    HeKeyError,
    HeLimitExceeded,
    HeRangeError,
    HeUnsupported,
    SignatureInvalid,
    TooFewRows,
)
from privacy.he.keys import (
    KeyFiles,
    KeyPair,
    PublicContext,
    SecretContext,
    generate_keys,
    load_public_context,
    load_secret_context,
    secret_context_from_bytes,
    write_keys,
)
from privacy.he.packing import (
    ChunkIndex,
    EncryptedColumn,
    Estimate,
    encrypt_column,
    enforce_limit,
    estimate,
    pack_column,
    unpack_column,
)
from privacy.he.params import ALL_OPERATIONS, HeParams, Operation, Scheme

__all__ = [
    "ALL_OPERATIONS",
    "ChunkIndex",
    "EncryptedColumn",
    "Envelope",
    "Estimate",
    "FingerprintMismatch",
    "HeError",
    "HeEvaluator",
    "HeKeyError",
    "HeLimitExceeded",
    "HeParams",
    "HeRangeError",
    "HeUnsupported",
    "KeyFiles",
    "KeyPair",
    "Operation",
    "PublicContext",
    "Result",
    "Scheme",
    "SecretContext",
    "SignatureInvalid",
    "TooFewRows",
    "decrypt",
    "encrypt_column",
    "enforce_limit",
    "estimate",
    "generate_keys",
    "generate_signing_key",
    "key_tag",
    "load_public_context",
    "load_secret_context",
    "load_signing_key",
    "load_verify_key",
    "pack_column",
    "secret_context_from_bytes",
    "sign_envelope",
    "signing_key_bytes",
    "unpack_column",
    "verify_key_bytes",
    "write_keys",
]
