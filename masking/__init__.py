"""Column masking for the ingest job: strategies, their registry, and k-anonymity enforcement.

Importing this package does not import Spark (the policy checker relies on that); Spark is
only imported when an expression is built or `enforce_k_anonymity` runs.
"""

from masking.base import KeyMaterial, MaskContext, MaskingError, Params, Strategy
from masking.catalog import REGISTRY, build_registry
from masking.kanon import KAnonymityReport, enforce_k_anonymity
from masking.registry import StrategyRegistry
from masking.strategies._common import key_tag
from masking.strategies.crypto import decrypt_deterministic, fpe_decrypt, fpe_encrypt
from masking.types import DataType

__all__ = [
    "REGISTRY",
    "DataType",
    "KAnonymityReport",
    "KeyMaterial",
    "MaskContext",
    "MaskingError",
    "Params",
    "Strategy",
    "StrategyRegistry",
    "build_registry",
    "decrypt_deterministic",
    "enforce_k_anonymity",
    "fpe_decrypt",
    "fpe_encrypt",
    "key_tag",
]
