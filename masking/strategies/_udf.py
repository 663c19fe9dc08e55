"""Vectorised Arrow (pandas) UDFs for the two strategies Spark has no primitive for.

Imported only while an expression is built (it imports pandas and pyspark); Python workers
import it again to run the batches, so the `masking` package must be installed on executors.
"""

import base64
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from pyspark.sql import Column
from pyspark.sql.pandas.functions import pandas_udf as _typed_pandas_udf

__all__ = ["fpe_encrypt_column", "siv_encrypt_column"]

# pyspark's overloads only know pandas type hints from pandas-stubs, which is not installed.
pandas_udf: Any = _typed_pandas_udf


def siv_encrypt_column(column: Column, key: bytes, associated_data: bytes, head: str) -> Column:
    """AES-SIV of each non-null string, as ``head + base64``; nulls stay null."""

    def aes_siv_encrypt(values: pd.Series) -> pd.Series:
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        cipher = AESSIV(key)
        out = [
            head + base64.b64encode(cipher.encrypt(v.encode("utf-8"), [associated_data])).decode()
            if isinstance(v, str)
            else None
            for v in values
        ]
        return pd.Series(out, index=values.index, dtype=object)

    encrypted: Column = pandas_udf(aes_siv_encrypt, "string")(column)
    return encrypted


def fpe_encrypt_column(column: Column, key: bytes, alphabet: str, tweak: bytes) -> Column:
    """FF3-1 of each non-null string (see `masking.strategies.crypto.fpe_transform`)."""

    def ff3_encrypt(values: pd.Series) -> pd.Series:
        from masking.strategies.crypto import _fpe_cipher, fpe_transform

        cipher = _fpe_cipher(key, alphabet)
        out = [
            fpe_transform(cipher, v, alphabet, tweak, decrypt=False) if isinstance(v, str) else None
            for v in values
        ]
        return pd.Series(out, index=values.index, dtype=object)

    encrypted: Column = pandas_udf(ff3_encrypt, "string")(column)
    return encrypted
