"""Key pairs: the key holder's secret context and the gateway's public context.

The secret context (secret key, public key, parameters) stays with the key holder. The public
context carries the public key and exactly the evaluation keys the configured operations need:
rotation (Galois) keys for the 12 power-of-two steps a full-ciphertext sum uses (N=8192),
when any of sum/mean/variance/weighted_sum is enabled; never relinearisation keys, because the
gateway only multiplies ciphertexts by plaintexts (masks and weights), never by ciphertexts.
`linear_scores` is slot-wise and `count` is plaintext, so neither needs any evaluation key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from privacy.he._seal import (
    ContextInfo,
    context_info,
    fingerprint_of,
    has_secret_key,
    public_bytes_from_secret,
)
from privacy.he.errors import HeKeyError
from privacy.he.params import ALL_OPERATIONS, ROTATING, HeParams, Operation

__all__ = [
    "KeyFiles",
    "KeyPair",
    "PublicContext",
    "SecretContext",
    "generate_keys",
    "load_public_context",
    "load_secret_context",
    "secret_context_from_bytes",
    "write_keys",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, eq=False)
class PublicContext:
    """A TenSEAL context without a secret key: what the serving process holds."""

    context: Any = field(repr=False)
    fingerprint: str
    info: ContextInfo
    rotations: bool


@dataclass(frozen=True, eq=False)
class SecretContext:
    """A TenSEAL context with the secret key: the key holder's, never the gateway's."""

    context: Any = field(repr=False)
    fingerprint: str
    info: ContextInfo


@dataclass(frozen=True)
class KeyFiles:
    """Where `write_keys` put a key pair."""

    secret: Path
    public: Path
    metadata: Path


@dataclass(frozen=True)
class KeyPair:
    """A freshly generated key pair, as bytes; `write_keys` stores it."""

    name: str
    key_id: str
    fingerprint: str
    params: HeParams
    operations: frozenset[Operation]
    created_at: datetime
    public_bytes: bytes = field(repr=False)
    secret_bytes: bytes = field(repr=False)

    @property
    def metadata(self) -> dict[str, Any]:
        """What may be recorded about the pair (no key material)."""
        return {
            "name": self.name,
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "created_at": self.created_at.isoformat(),
            "params": self.params.model_dump(mode="json"),
            "operations": sorted(self.operations),
            "rotation_keys": bool(self.operations & ROTATING),
            "relinearisation_keys": False,
            "public_sha256": hashlib.sha256(self.public_bytes).hexdigest(),
            "public_bytes": len(self.public_bytes),
        }

    def write_keys(self, folder: Path | str) -> KeyFiles:
        """Write `<name>.secret` (mode 0600), `<name>.public` and `<name>.json`; never overwrite."""
        return write_keys(self, folder)

    def public_context(self) -> PublicContext:
        return load_public_context(self.public_bytes)

    def secret_context(self) -> SecretContext:
        return secret_context_from_bytes(self.secret_bytes)


def _bfv_plain_modulus(params: HeParams) -> int:
    """A batching prime (t = 1 mod 2N) of `params.bfv_plain_modulus_bits` bits that is not
    one of the coefficient primes (SEAL picks both from the top of the same range)."""
    from tenseal import sealapi

    degree = params.poly_modulus_degree
    primes = {
        int(m.value())
        for m in sealapi.CoeffModulus.Create(degree, list(params.coeff_mod_bit_sizes))
    }
    for bits in range(params.bfv_plain_modulus_bits, 19, -1):
        candidate = int(sealapi.PlainModulus.Batching(degree, bits).value())
        if candidate not in primes:
            return candidate
    raise HeKeyError("no BFV plaintext modulus fits these parameters")  # pragma: no cover


def generate_keys(
    params: HeParams, name: str, *, operations: Iterable[Operation] = ALL_OPERATIONS
) -> KeyPair:
    """A new key pair for `params`, with evaluation keys for `operations` only."""
    import tenseal as ts

    if not _NAME.match(name):
        raise ValueError(
            "a key name is 1-64 letters, digits, '.', '_' or '-', not starting with a dot"
        )
    ops = frozenset(operations)
    unknown = ops - ALL_OPERATIONS
    if unknown:
        raise ValueError(f"unknown operations: {sorted(unknown)}")
    sizes = list(params.coeff_mod_bit_sizes)
    if params.scheme == "ckks":
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree, coeff_mod_bit_sizes=sizes)
        ctx.global_scale = 2.0**params.global_scale_bits
    else:
        ctx = ts.context(
            ts.SCHEME_TYPE.BFV,
            params.poly_modulus_degree,
            plain_modulus=_bfv_plain_modulus(params),
            coeff_mod_bit_sizes=sizes,
        )
    secret_bytes: bytes = ctx.serialize(
        save_public_key=True, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    del ctx
    public_bytes = public_bytes_from_secret(secret_bytes, galois=bool(ops & ROTATING))
    return KeyPair(
        name=name,
        key_id=f"he-{name}-{secrets.token_hex(4)}",
        fingerprint=fingerprint_of(public_bytes),
        params=params,
        operations=ops,
        created_at=datetime.now(UTC).replace(microsecond=0),
        public_bytes=public_bytes,
        secret_bytes=secret_bytes,
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_keys(pair: KeyPair, folder: Path | str) -> KeyFiles:
    """Write `<name>.secret` (0600), `<name>.public` (0644) and `<name>.json` (0644) in `folder`.

    Refuses (FileExistsError) when any of the three exists: a key pair is never overwritten.
    """
    base = Path(folder)
    base.mkdir(parents=True, exist_ok=True)
    files = KeyFiles(
        secret=base / f"{pair.name}.secret",
        public=base / f"{pair.name}.public",
        metadata=base / f"{pair.name}.json",
    )
    for path in (files.secret, files.public, files.metadata):
        if path.exists():
            raise FileExistsError(f"{path} exists; key files are never overwritten")
    _write_new(files.secret, pair.secret_bytes, 0o600)
    _write_new(files.public, pair.public_bytes, 0o644)
    text = json.dumps(pair.metadata, indent=2, sort_keys=True) + "\n"
    _write_new(files.metadata, text.encode(), 0o644)
    return files


def load_public_context(data: bytes, *, n_threads: int | None = None) -> PublicContext:
    """The serving process's context; refuses bytes that carry a secret key (HeKeyError)."""
    import tenseal as ts

    if has_secret_key(data):
        raise HeKeyError(
            "the context carries a secret key; the serving path accepts public contexts only"
        )
    ctx = ts.context_from(data, n_threads)
    if ctx.is_private():
        raise HeKeyError(
            "the context carries a secret key; the serving path accepts public contexts only"
        )
    return PublicContext(
        context=ctx,
        fingerprint=fingerprint_of(data),
        info=context_info(data),
        rotations=bool(ctx.has_galois_keys()),
    )


def secret_context_from_bytes(data: bytes) -> SecretContext:
    """The key holder's context from secret bytes; refuses bytes without a secret key."""
    import tenseal as ts

    if not has_secret_key(data):
        raise HeKeyError("the context has no secret key")
    ctx = ts.context_from(data)
    if not ctx.is_private():  # pragma: no cover - has_secret_key already decided
        raise HeKeyError("the context has no secret key")
    return SecretContext(context=ctx, fingerprint=fingerprint_of(data), info=context_info(data))


def load_secret_context(path: Path | str, *, check_permissions: bool = True) -> SecretContext:
    """The key holder's context from `<name>.secret`.

    With `check_permissions` (the default) a file that its group or others may read or write
    is refused, as ssh does with private keys.
    """
    target = Path(path)
    if check_permissions and os.name == "posix":
        mode = stat.S_IMODE(target.stat().st_mode)
        if mode & 0o077:
            raise HeKeyError(
                f"{target} is accessible to group or others (mode {mode:04o}); use 0600"
            )
    return secret_context_from_bytes(target.read_bytes())
