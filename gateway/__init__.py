"""The data-governance gateway: governed ingest, privacy-preserving releases and features.

The package composes the capability packages (`masking`, `privacy`, `synthetic`,
`feature_store`); none of them imports `gateway`. Importing it is cheap: Spark, torch and
the other heavy dependencies load only where a command needs them.
"""

import logging

__all__ = ["__version__"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
