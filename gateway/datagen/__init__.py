"""Seeded, streaming generator of realistic raw data for the two example datasets.

`generate(out, rows)` writes `rows` customers and their transactions as CSV or JSON lines
part files under `out/customers/` and `out/transactions/`, with a small share of
deliberately bad rows (for quarantine tests) and fixed canary values (for leak tests, see
`read_canaries`). The same seed gives byte-identical files. Memory stays bounded at any
size: rows are built block by block with numpy and Arrow kernels from seeded pools of Faker
values, written and dropped.

Importing this package loads numpy and pyarrow only (Faker on first use; never Spark or
torch). Command line: `python -m gateway.datagen OUT --rows N`.
"""

from __future__ import annotations

from gateway.datagen.bad import CUSTOMER_BAD_KINDS, TRANSACTION_BAD_KINDS, BadKind
from gateway.datagen.canaries import CANARIES_FILE, read_canaries
from gateway.datagen.generator import GENERATOR_VERSION, MANIFEST_FILE, GenerateReport, generate
from gateway.datagen.schema import (
    CUSTOMER_COLUMNS,
    CUSTOMER_TYPES,
    DATASETS,
    TRANSACTION_COLUMNS,
    TRANSACTION_TYPES,
)
from gateway.datagen.writer import Format

__all__ = [
    "CANARIES_FILE",
    "CUSTOMER_BAD_KINDS",
    "CUSTOMER_COLUMNS",
    "CUSTOMER_TYPES",
    "DATASETS",
    "GENERATOR_VERSION",
    "MANIFEST_FILE",
    "TRANSACTION_BAD_KINDS",
    "TRANSACTION_COLUMNS",
    "TRANSACTION_TYPES",
    "BadKind",
    "Format",
    "GenerateReport",
    "generate",
    "read_canaries",
]
