"""What happens to one column for one purpose: keep, drop, dp_only, encrypt, or a mask strategy.

Stewards write a protection as a word (`keep`, `drop`, `dp_only`, `nullify`) or as a
one-key mapping (`{tokenize: {key: customer-key}}`, `{encrypt: ckks}`). Mask parameters
are validated by the strategy's own `Params` model from the masking registry.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from gateway.policy.organisation import Frozen
from masking.base import MaskingError
from masking.types import DataType

__all__ = ["HE_SCHEMES", "Protection", "ProtectionKind", "parse_protection", "strictness"]

HE_SCHEMES = ("ckks", "bfv")


class ProtectionKind(StrEnum):
    """The five things a column can become in a governed table."""

    KEEP = "keep"
    DROP = "drop"
    DP_ONLY = "dp_only"
    ENCRYPT = "encrypt"
    MASK = "mask"


class Protection(Frozen):
    """A validated protection; `params` hold the strategy's validated parameters as plain data."""

    kind: ProtectionKind
    strategy: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    scheme: str | None = None

    def __str__(self) -> str:
        if self.kind is ProtectionKind.MASK:
            args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
            return f"{self.strategy}({args})" if args else str(self.strategy)
        if self.kind is ProtectionKind.ENCRYPT:
            return f"encrypt({self.scheme})"
        return self.kind.value

    @property
    def exposes_raw(self) -> bool:
        """True when the governed table carries the raw value (only `keep`)."""
        return self.kind is ProtectionKind.KEEP

    @property
    def in_governed_table(self) -> bool:
        """True when the column appears in the governed table at all."""
        return self.kind in (ProtectionKind.KEEP, ProtectionKind.MASK)


KEEP = Protection(kind=ProtectionKind.KEEP)

# How much a protection reveals, least revealing highest: when several cell rules and the
# column's own protection apply to one cell, the highest rank wins (ties: the earliest rule).
_STRICTNESS: dict[str, int] = {
    "drop": 1000,
    "dp_only": 900,
    "encrypt": 850,
    "nullify": 800,
    "constant": 800,
    "hash": 700,
    "tokenize": 650,
    "encrypt_deterministic": 600,
    "fpe": 580,
    "card_number": 500,
    "email": 500,
    "phone": 500,
    "partial": 480,
    "char_class": 470,
    "truncate": 400,
    "ip_prefix": 400,
    "bucket": 400,
    "age_band": 400,
    "generalize_date": 380,
    "round": 360,
    "date_shift": 300,
    "randomized_response": 300,
    "noise": 300,
    "regex_replace": 200,
    "keep": 0,
}


def strictness(protection: Protection) -> int:
    """Rank of a protection: the strictest one applicable to a cell wins."""
    key = protection.strategy if protection.kind is ProtectionKind.MASK else protection.kind.value
    return _STRICTNESS[str(key)]


def ranked_strategies() -> frozenset[str]:
    """Strategy names the strictness order knows (every registered strategy must be here)."""
    return frozenset(_STRICTNESS)


def _registry() -> Any:
    from masking.catalog import REGISTRY

    return REGISTRY


def parse_protection(raw: Any) -> Protection:
    """Validate a steward's protection spec; ValueError with a steward-facing message."""
    if raw is None:
        raise ValueError(
            "a protection is required; write 'nullify' to set cells to null, "
            "or 'keep' to leave them as they are"
        )
    if isinstance(raw, str):
        return _from_word(raw.strip())
    if isinstance(raw, dict):
        if len(raw) != 1:
            raise ValueError(
                "a protection mapping has exactly one key, the strategy name "
                f"(found {', '.join(map(str, raw)) or 'none'})"
            )
        ((name, params),) = raw.items()
        return _from_mapping(str(name), params)
    raise ValueError(
        "a protection is a word such as 'keep' or a one-key mapping such as "
        "{tokenize: {key: my-key}}"
    )


def _from_word(word: str) -> Protection:
    if word in ("keep", "drop", "dp_only"):
        return Protection(kind=ProtectionKind(word))
    if word == "encrypt":
        return Protection(kind=ProtectionKind.ENCRYPT, scheme="ckks")
    if word == "mask":
        raise ValueError("'mask' is not a strategy; name one, e.g. {partial: {show_last: 4}}")
    return _from_mapping(word, None)


def _from_mapping(name: str, params: Any) -> Protection:
    if name == "encrypt":
        scheme = params.get("scheme") if isinstance(params, dict) else params
        if isinstance(params, dict) and set(params) - {"scheme"}:
            raise ValueError("encrypt takes only 'scheme'")
        if scheme not in HE_SCHEMES:
            raise ValueError(
                f"encrypt scheme must be one of {', '.join(HE_SCHEMES)}, not {scheme!r}"
            )
        return Protection(kind=ProtectionKind.ENCRYPT, scheme=scheme)
    if name in ("keep", "drop", "dp_only"):
        if params not in (None, {}):
            raise ValueError(f"'{name}' takes no parameters")
        return Protection(kind=ProtectionKind(name))
    registry = _registry()
    if name not in registry:
        import difflib

        choices = [*registry.names(), "keep", "drop", "dp_only", "encrypt"]
        close = difflib.get_close_matches(name, choices, n=1)
        hint = (
            f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(choices))})"
        )
        raise ValueError(f"unknown protection '{name}'{hint}")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"parameters of '{name}' must be a mapping, e.g. {{{name}: {{...}}}}")
    strategy = registry.get(name)
    try:
        parsed = strategy.parse(params)
    except ValidationError as exc:
        raise ValueError(f"'{name}': {_pydantic_message(exc)}") from None
    except MaskingError as exc:
        raise ValueError(f"'{name}': {exc}") from None
    return Protection(
        kind=ProtectionKind.MASK, strategy=name, params=parsed.model_dump(mode="json")
    )


def type_problem(protection: Protection, data_type: DataType) -> str | None:
    """Why a protection cannot apply to a column of `data_type`, or None."""
    if protection.kind is ProtectionKind.ENCRYPT and data_type not in (
        DataType.INTEGER,
        DataType.LONG,
        DataType.DOUBLE,
        DataType.BOOLEAN,
    ):
        return f"encryption applies to numeric or boolean columns, not {data_type}"
    if protection.kind is not ProtectionKind.MASK:
        return None
    strategy = _registry().get(protection.strategy)
    params = strategy.parse(protection.params)
    problem: str | None = strategy.check(data_type, params)
    return problem


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown parameter"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
