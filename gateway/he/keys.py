"""HE key files of the gateway and the key holder, and how the serving process loads them.

Layout (see docs/he.md):

- `<secrets>/he/<name>.public`: the public context (no secret key), read by ingest and compute;
- `<secrets>/he/<name>.json`: its metadata (key id, fingerprint, parameters, dataset);
- `<secrets>/he/signing.key` (0600) / `signing.pub`: the gateway's Ed25519 envelope key;
- `<keyholder>/<name>.secret` (0600), `.public`, `.json` and `gateway-signing.pub`: the key
  holder's copy, in a folder the key holder chooses (default `<home>/keyholder`).

The serving process only ever calls `load_public_context`, which refuses secret keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import ConfigurationError, ValidationFailed
from gateway.policy.dataset import DatasetPolicy
from gateway.settings import Settings
from privacy.he import (
    ALL_OPERATIONS,
    HeParams,
    Operation,
    PublicContext,
    Scheme,
    generate_keys,
    generate_signing_key,
    key_tag,
    load_public_context,
    load_signing_key,
    load_verify_key,
    signing_key_bytes,
    verify_key_bytes,
)

__all__ = [
    "SIGNING_KEY",
    "VERIFY_KEY",
    "GatewayKey",
    "KeygenResult",
    "find_gateway_key",
    "he_folder",
    "keygen",
    "keyholder_folder",
    "load_gateway_key",
    "load_gateway_signing_key",
    "load_gateway_verify_key",
    "params_for",
]

SIGNING_KEY = "signing.key"
VERIFY_KEY = "signing.pub"
KEYHOLDER_VERIFY_KEY = "gateway-signing.pub"


def he_folder(settings: Settings) -> Path:
    """The gateway's HE key folder: `<secrets>/he`."""
    return settings.secrets / "he"


def keyholder_folder(settings: Settings) -> Path:
    """The key holder's default folder: `<home>/keyholder`."""
    return settings.home / "keyholder"


def params_for(ds: DatasetPolicy | None, scheme: Scheme | None = None) -> HeParams:
    """HeParams from the dataset's `he:` settings (defaults without one); `scheme` overrides."""
    raw: dict[str, Any] = ds.he.model_dump() if ds is not None else {}
    if scheme is not None:
        raw["scheme"] = scheme
    try:
        return HeParams.model_validate(raw)
    except ValueError as exc:
        raise ValidationFailed(f"invalid HE parameters: {exc}") from None


@dataclass(frozen=True)
class KeygenResult:
    """What `keygen` wrote, and the ids to print (no key material)."""

    name: str
    key_id: str
    fingerprint: str
    scheme: str
    signer: str
    secret: Path
    public: Path
    gateway_public: Path
    verify_key: Path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)


def _signing_key(folder: Path) -> Ed25519PrivateKey:
    """The gateway's signing key, created (0600) with its public half when missing."""
    path = folder / SIGNING_KEY
    if not path.exists():
        key = generate_signing_key()
        _write_new(path, signing_key_bytes(key).hex().encode() + b"\n", 0o600)
        _write_new(folder / VERIFY_KEY, verify_key_bytes(key).hex().encode() + b"\n", 0o644)
        return key
    return _read_signing_key(path)


def _read_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_signing_key(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except (OSError, ValueError, UnicodeDecodeError):
        raise ConfigurationError(f"the HE signing key at {path} is not readable") from None


def keygen(
    settings: Settings,
    name: str,
    *,
    dataset: DatasetPolicy | None = None,
    scheme: Scheme | None = None,
    keyholder: Path | None = None,
    operations: Iterable[Operation] = ALL_OPERATIONS,
) -> KeygenResult:
    """Generate a key pair: secret context for the key holder, public context for the gateway.

    Never overwrites a key file (FileExistsError via ConfigurationError).
    """
    params = params_for(dataset, scheme)
    pair = generate_keys(params, name, operations=operations)
    gateway = he_folder(settings)
    holder = keyholder if keyholder is not None else keyholder_folder(settings)
    gateway_public = gateway / f"{name}.public"
    gateway_meta = gateway / f"{name}.json"
    for path in (gateway_public, gateway_meta):
        if path.exists():
            raise ConfigurationError(f"{path} exists; HE keys are never overwritten")
    try:
        files = pair.write_keys(holder)
    except FileExistsError as exc:
        raise ConfigurationError(str(exc)) from None
    holder.chmod(0o700)
    signing = _signing_key(gateway)
    metadata = dict(pair.metadata)
    metadata["dataset"] = dataset.dataset if dataset is not None else None
    metadata["signer"] = key_tag(signing)
    _write_new(gateway_public, pair.public_bytes, 0o644)
    _write_new(
        gateway_meta, (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode(), 0o644
    )
    holder_verify = holder / KEYHOLDER_VERIFY_KEY
    verify_hex = verify_key_bytes(signing).hex().encode() + b"\n"
    if not holder_verify.exists():
        _write_new(holder_verify, verify_hex, 0o644)
    elif holder_verify.read_bytes().strip() != verify_hex.strip():
        raise ConfigurationError(f"{holder_verify} holds another gateway signing key")
    return KeygenResult(
        name=name,
        key_id=pair.key_id,
        fingerprint=pair.fingerprint,
        scheme=params.scheme,
        signer=key_tag(signing),
        secret=files.secret,
        public=files.public,
        gateway_public=gateway_public,
        verify_key=holder_verify,
    )


@dataclass(frozen=True, eq=False)
class GatewayKey:
    """The public side of one key pair, as the serving process holds it."""

    name: str
    metadata: dict[str, Any]
    public_bytes: bytes
    public: PublicContext

    @property
    def params(self) -> HeParams:
        """The parameters the pair was generated with."""
        return HeParams.model_validate(self.metadata["params"])

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint


def _metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigurationError(f"HE key metadata {path} is not readable JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"HE key metadata {path} is not a JSON object")
    return data


def _key_name(settings: Settings, dataset: str) -> str:
    """The newest key bound to `dataset` (keygen --dataset), else a key named like it."""
    folder = he_folder(settings)
    bound = []
    for meta in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = _metadata(meta)
        if data.get("dataset") == dataset and (folder / f"{meta.stem}.public").exists():
            bound.append((str(data.get("created_at", "")), meta.stem))
    if bound:
        return max(bound)[1]
    if (folder / f"{dataset}.public").exists():
        return dataset
    raise ConfigurationError(
        f"no HE key for dataset '{dataset}' in {folder}; "
        f"run `gateway he keygen --name <name> --dataset {dataset}`"
    )


def load_gateway_key(settings: Settings, dataset: str, name: str | None = None) -> GatewayKey:
    """The public context for `dataset` (or key `name`); refuses a context with a secret key."""
    key_name = name if name is not None else _key_name(settings, dataset)
    folder = he_folder(settings)
    path = folder / f"{key_name}.public"
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigurationError(f"HE public context {path} is not readable") from None
    meta_path = folder / f"{key_name}.json"
    metadata: dict[str, Any] = _metadata(meta_path) if meta_path.exists() else {"name": key_name}
    public = load_public_context(data)  # HeKeyError when it carries a secret key
    if metadata.get("fingerprint", public.fingerprint) != public.fingerprint:
        raise ConfigurationError(f"HE key metadata {meta_path} names another fingerprint")
    if "params" not in metadata:
        metadata["params"] = {
            "scheme": public.info.scheme,
            "poly_modulus_degree": public.info.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(public.info.coeff_mod_bit_sizes),
            "global_scale_bits": public.info.scale_bits or 40,
        }
    return GatewayKey(key_name, metadata, data, public)


def load_gateway_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The gateway's envelope signing key (ConfigurationError when keygen never ran)."""
    path = he_folder(settings) / SIGNING_KEY
    if not path.exists():
        raise ConfigurationError(f"no HE signing key at {path}; run `gateway he keygen` first")
    return _read_signing_key(path)


def load_gateway_verify_key(path: Path) -> Ed25519PublicKey:
    """A verification key file (hex of the raw 32 bytes, or PEM)."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise ConfigurationError(f"verification key {path} is not readable") from None
    try:
        return load_verify_key(bytes.fromhex(raw.decode("ascii").strip()))
    except (ValueError, UnicodeDecodeError):
        try:
            return load_verify_key(raw)
        except ValueError:
            raise ConfigurationError(f"{path} is not an Ed25519 verification key") from None


def find_gateway_key(settings: Settings, dataset: str, fingerprint: str) -> GatewayKey:
    """The public context whose fingerprint is `fingerprint` (the one a table was packed with)."""
    folder = he_folder(settings)
    for meta in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if _metadata(meta).get("fingerprint") == fingerprint:
            return load_gateway_key(settings, dataset, meta.stem)
    key = load_gateway_key(settings, dataset)
    if key.fingerprint != fingerprint:
        raise ConfigurationError(
            "the encrypted table was packed under a key pair whose public context is gone"
        )
    return key
