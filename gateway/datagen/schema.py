"""Column names, logical types and the fixed vocabularies of the two example datasets.

The column order here is the column order of every file the generator writes; the policy
files under `examples/policies` describe the same columns.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "COUNTRIES",
    "COUNTRY_CURRENCY",
    "COUNTRY_WEIGHTS",
    "CUSTOMERS",
    "CUSTOMER_COLUMNS",
    "CUSTOMER_TYPES",
    "DATASETS",
    "GENDERS",
    "LOCALES",
    "TRANSACTIONS",
    "TRANSACTION_COLUMNS",
    "TRANSACTION_TYPES",
    "Dataset",
    "JsonKind",
    "LogicalType",
    "json_kind",
]

Dataset = Literal["customers", "transactions"]
LogicalType = Literal["string", "date", "timestamp", "double", "integer", "boolean"]
JsonKind = Literal["string", "number", "boolean"]

CUSTOMERS: Final = "customers"
TRANSACTIONS: Final = "transactions"
DATASETS: Final[tuple[Dataset, Dataset]] = ("customers", "transactions")

CUSTOMER_TYPES: Final[dict[str, LogicalType]] = {
    "customer_id": "string",
    "full_name": "string",
    "email": "string",
    "phone": "string",
    "national_id": "string",
    "birth_date": "date",
    "street_address": "string",
    "city": "string",
    "postal_code": "string",
    "country": "string",
    "gender": "string",
    "income": "double",
    "credit_score": "integer",
    "consent_marketing": "boolean",
    "consent_research": "boolean",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}

TRANSACTION_TYPES: Final[dict[str, LogicalType]] = {
    "transaction_id": "string",
    "customer_id": "string",
    "card_number": "string",
    "amount": "double",
    "currency": "string",
    "merchant": "string",
    "merchant_category": "string",
    "event_time": "timestamp",
    "ip_address": "string",
    "country": "string",
    "channel": "string",
    "is_fraud": "boolean",
}

CUSTOMER_COLUMNS: Final[tuple[str, ...]] = tuple(CUSTOMER_TYPES)
TRANSACTION_COLUMNS: Final[tuple[str, ...]] = tuple(TRANSACTION_TYPES)

# Country order matters: it is the index order used by every vectorised lookup table.
COUNTRIES: Final[tuple[str, ...]] = ("DE", "FR", "GB", "US", "NL", "ES", "IT")
COUNTRY_WEIGHTS: Final[tuple[float, ...]] = (0.30, 0.18, 0.15, 0.12, 0.09, 0.08, 0.08)
LOCALES: Final[tuple[str, ...]] = ("de_DE", "fr_FR", "en_GB", "en_US", "nl_NL", "es_ES", "it_IT")
COUNTRY_CURRENCY: Final[dict[str, str]] = {
    "DE": "EUR",
    "FR": "EUR",
    "GB": "GBP",
    "US": "USD",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
}
GENDERS: Final[tuple[str, ...]] = ("F", "M", "X")
CATEGORIES: Final[tuple[str, ...]] = (
    "grocery",
    "travel",
    "electronics",
    "restaurants",
    "fuel",
    "online",
    "utilities",
    "health",
)
CHANNELS: Final[tuple[str, ...]] = ("online", "pos", "atm")

_JSON_KINDS: Final[dict[LogicalType, JsonKind]] = {
    "string": "string",
    "date": "string",
    "timestamp": "string",
    "double": "number",
    "integer": "number",
    "boolean": "boolean",
}


def json_kind(logical: LogicalType) -> JsonKind:
    """How a column of this logical type is written in JSON lines."""
    return _JSON_KINDS[logical]
