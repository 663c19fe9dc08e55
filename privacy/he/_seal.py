"""Low-level helpers over TenSEAL's serialized contexts and SEAL's own bindings.

TenSEAL serializes a context as a small protobuf (`tenseal/proto/tensealcontext.proto`):

    TenSEALContextProto { 1: bytes encryption_parameters; 2: TenSEALPublicProto public_context;
                          3: TenSEALPrivateProto private_context; 4: uint32 encryption_type }
    TenSEALPublicProto  { 1: bytes public_key; 2: uint32 auto_flags; 3: double scale;
                          4: bytes relin_keys; 5: bytes galois_keys }
    TenSEALPrivateProto { 1: bytes secret_key; 2: bool relin_keys_generated;
                          3: bool galois_keys_generated }

The few functions here read and rewrite that wire format (without a protobuf dependency),
so the package can (a) detect a secret key before loading bytes into TenSEAL, (b) fingerprint
a key pair from bytes that both halves carry unchanged, and (c) ship only the Galois keys the
operations use. SEAL objects cross into `tenseal.sealapi` through in-memory files
(`memfd_create`), so the secret key never touches a disk while rotation keys are made.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy.he.errors import HeKeyError
from privacy.he.params import Scheme, ckks_capacity_bits

__all__ = [
    "ContextInfo",
    "context_info",
    "fingerprint_of",
    "has_secret_key",
    "public_bytes_from_secret",
]

_LEN = 2  # wire type of bytes and sub-messages
_Field = tuple[int, int, Any]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise HeKeyError("not a serialized TenSEAL context (truncated)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 63:
            raise HeKeyError("not a serialized TenSEAL context (bad varint)")


def _parse(data: bytes) -> list[_Field]:
    fields: list[_Field] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise HeKeyError("not a serialized TenSEAL context (unknown wire type)")
        if pos > len(data):
            raise HeKeyError("not a serialized TenSEAL context (truncated)")
        fields.append((number, wire, value))
    return fields


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _encode(fields: list[_Field]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        if wire == 0:
            out += _varint(value)
        elif wire == _LEN:
            out += _varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def _field(fields: list[_Field], number: int) -> Any:
    for found, _, value in fields:
        if found == number:
            return value
    return None


def has_secret_key(data: bytes) -> bool:
    """True when serialized context bytes carry a (non-empty) secret key."""
    private = _field(_parse(data), 3)
    return bool(private) and bool(_field(_parse(private), 1))


def fingerprint_of(data: bytes) -> str:
    """Short hex SHA-256 over the parameters and public key of serialized context bytes.

    Both halves of a key pair carry these two byte strings unchanged, so the key holder
    recomputes the same fingerprint from the secret file. Evaluation keys are left out:
    TenSEAL regenerates Galois keys whenever it loads a secret context, so they are not a
    stable identifier (and do not decide who can decrypt).
    """
    top = _parse(data)
    parms = _field(top, 1) or b""
    public = _field(top, 2) or b""
    public_key = _field(_parse(public), 1) or b""
    if not parms or not public_key:
        raise HeKeyError("the context has no encryption parameters or no public key")
    digest = hashlib.sha256(b"privacy.he/v1\0")
    for part in (parms, public_key):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


@contextmanager
def _memfile(data: bytes = b"") -> Iterator[str]:
    """A path to an in-memory file holding `data` (Linux memfd; a private temp dir elsewhere)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("privacy-he", 0)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="privacy-he-") as folder:  # pragma: no cover
        path = Path(folder) / "blob"
        path.write_bytes(data)
        path.chmod(0o600)
        yield str(path)


def _read_path(path: str) -> bytes:
    return Path(path).read_bytes()


def _seal_parameters(parms_bytes: bytes) -> Any:
    from tenseal import sealapi

    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
    with _memfile(parms_bytes) as path:
        parms.load(path)
    return parms


@dataclass(frozen=True)
class ContextInfo:
    """What a serialized context says about itself: scheme, degree, primes, scale."""

    scheme: Scheme
    poly_modulus_degree: int
    coeff_modulus: tuple[int, ...]
    plain_modulus: int
    scale_bits: int | None

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def coeff_mod_bit_sizes(self) -> tuple[int, ...]:
        return tuple(prime.bit_length() for prime in self.coeff_modulus)

    @property
    def capacity_bits(self) -> int:
        """CKKS: |value| < 2**capacity_bits for every slot and sum, after one rescale."""
        if self.scale_bits is None:
            return 0
        return ckks_capacity_bits(self.coeff_mod_bit_sizes, self.scale_bits)

    @property
    def rescale_compensation(self) -> float:
        """q/Δ for the prime q that the first rescale drops (CKKS).

        TenSEAL labels a rescaled ciphertext with the initial scale Δ although its true scale
        is Δ²/q; multiplying every plaintext multiplier by q/Δ cancels that bias exactly
        (uncompensated it is 1.34e-7 relative at the defaults).
        """
        if self.scale_bits is None:
            return 1.0
        return self.coeff_modulus[-2] / 2.0**self.scale_bits


def context_info(data: bytes) -> ContextInfo:
    """Parameters of serialized context bytes, read through SEAL."""
    import struct

    from tenseal import sealapi

    top = _parse(data)
    parms = _seal_parameters(_field(top, 1) or b"")
    scheme: Scheme = "bfv" if parms.scheme() == sealapi.SCHEME_TYPE.BFV else "ckks"
    public = _parse(_field(top, 2) or b"")
    raw_scale = _field(public, 3)
    scale_bits: int | None = None
    if scheme == "ckks" and raw_scale is not None:
        scale = struct.unpack("<d", raw_scale)[0]
        scale_bits = int(round(float(scale)).bit_length() - 1)
    return ContextInfo(
        scheme=scheme,
        poly_modulus_degree=int(parms.poly_modulus_degree()),
        coeff_modulus=tuple(int(m.value()) for m in parms.coeff_modulus()),
        plain_modulus=int(parms.plain_modulus().value()) if scheme == "bfv" else 0,
        scale_bits=scale_bits,
    )


def rotation_galois_elements(poly_modulus_degree: int) -> list[int]:
    """Galois elements for left rotations by 1, 2, 4, ... N/4 slots: what a full sum uses.

    SEAL maps a rotation by `step` slots to the element 3**step mod 2N (CKKS rotate_vector
    and BFV rotate_rows alike); TenSEAL's sum over N/2 slots rotates by N/4, N/8, ... 1.
    """
    m = 2 * poly_modulus_degree
    return [pow(3, 1 << k, m) for k in range((poly_modulus_degree // 4).bit_length())]


def public_bytes_from_secret(secret_bytes: bytes, *, galois: bool) -> bytes:
    """The public half of serialized secret context bytes: no secret key, no relinearisation
    keys, and (when `galois`) only the rotation keys a full-ciphertext sum needs."""
    from tenseal import sealapi

    top = _parse(secret_bytes)
    parms_bytes = _field(top, 1)
    public = [f for f in _parse(_field(top, 2) or b"") if f[0] not in (4, 5)]
    if galois:
        secret_key = _field(_parse(_field(top, 3) or b""), 1)
        if not secret_key:
            raise HeKeyError("rotation keys need the secret key")
        parms = _seal_parameters(parms_bytes)
        seal_context = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
        key = sealapi.SecretKey()
        with _memfile(secret_key) as path:
            key.load(seal_context, path)
        keys = sealapi.GaloisKeys()
        elements = rotation_galois_elements(int(parms.poly_modulus_degree()))
        sealapi.KeyGenerator(seal_context, key).create_galois_keys(elements, keys)
        del key
        with _memfile() as path:
            keys.save(path)
            galois_bytes = _read_path(path)
        public.append((5, _LEN, galois_bytes))
    rebuilt = [(n, w, _encode(public) if n == 2 else v) for n, w, v in top if n != 3]
    return _encode(sorted(rebuilt, key=lambda f: f[0]))
