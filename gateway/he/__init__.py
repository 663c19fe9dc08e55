"""Homomorphic encryption in the gateway: keys, encrypted columns at ingest, computation.

- `keygen` writes the key holder's secret context and the gateway's public context;
- `write_encrypted_columns` packs a plan's `encrypt` columns at ingest (called by the job);
- `compute_he` runs an authorised, audited computation and returns a signed `HeResult`;
- `decrypt_result` is the key holder's verification and decryption.
"""

from gateway.he.compute import (
    MAX_SCORED_ENTITIES,
    HeComputeRequest,
    HeResult,
    compute_he,
    min_rows_for,
)
from gateway.he.decrypt import Decrypted, decrypt_result, read_result
from gateway.he.errors import HeLimitError, HeRefused, HeTooFewRows, to_gateway_error
from gateway.he.ingest import encryption_estimate, write_encrypted_columns
from gateway.he.keys import (
    GatewayKey,
    KeygenResult,
    find_gateway_key,
    he_folder,
    keygen,
    keyholder_folder,
    load_gateway_key,
    load_gateway_signing_key,
    load_gateway_verify_key,
    params_for,
)
from gateway.he.table import EncryptedTable, read_encrypted_table

__all__ = [
    "MAX_SCORED_ENTITIES",
    "Decrypted",
    "EncryptedTable",
    "GatewayKey",
    "HeComputeRequest",
    "HeLimitError",
    "HeRefused",
    "HeResult",
    "HeTooFewRows",
    "KeygenResult",
    "compute_he",
    "decrypt_result",
    "encryption_estimate",
    "find_gateway_key",
    "he_folder",
    "keygen",
    "keyholder_folder",
    "load_gateway_key",
    "load_gateway_signing_key",
    "load_gateway_verify_key",
    "min_rows_for",
    "params_for",
    "read_encrypted_table",
    "read_result",
    "to_gateway_error",
    "write_encrypted_columns",
]
