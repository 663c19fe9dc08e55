"""The catalogue: every policy-language name is registered, registries refuse duplicates, and
importing `masking` stays free of Spark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import masking
from masking import REGISTRY, MaskingError, StrategyRegistry, build_registry
from masking.catalog import BUILTIN_STRATEGIES
from masking.types import DataType

REPO = Path(__file__).resolve().parents[2]

POLICY_NAMES = {
    "nullify", "constant", "regex_replace", "hash", "tokenize", "encrypt_deterministic", "fpe",
    "partial", "char_class", "email", "phone", "card_number", "bucket", "round",
    "generalize_date", "age_band", "truncate", "ip_prefix", "date_shift",
    "randomized_response", "noise",
}  # fmt: skip

UDF_STRATEGIES = {"encrypt_deterministic", "fpe"}


def test_when_catalog_loaded_then_every_policy_name_is_registered() -> None:
    assert set(REGISTRY.names()) == POLICY_NAMES
    assert len(BUILTIN_STRATEGIES) == len(POLICY_NAMES)


def test_when_registry_built_twice_then_instances_are_independent() -> None:
    fresh = build_registry()
    assert fresh.names() == REGISTRY.names()
    assert fresh.get("hash") is not REGISTRY.get("hash")


def test_when_a_name_is_registered_twice_then_masking_error() -> None:
    registry = build_registry()
    with pytest.raises(MaskingError, match="'hash' is already registered"):
        registry.register(type(registry.get("hash"))())


def test_when_constructing_with_duplicates_then_masking_error() -> None:
    strategy = REGISTRY.get("nullify")
    with pytest.raises(MaskingError, match="already registered"):
        StrategyRegistry([strategy, strategy])


def test_when_name_unknown_then_error_lists_known_names() -> None:
    with pytest.raises(MaskingError) as caught:
        REGISTRY.get("redact")
    message = str(caught.value)
    assert "'redact'" in message
    for name in POLICY_NAMES:
        assert name in message


@pytest.mark.parametrize("strategy", list(REGISTRY), ids=lambda s: s.name)
def test_when_strategy_declared_then_contract_fields_are_set(strategy: masking.Strategy) -> None:
    assert strategy.description and "\n" not in strategy.description
    assert strategy.accepts and strategy.accepts <= set(DataType)
    assert strategy.Params.model_config.get("frozen") is True
    assert strategy.Params.model_config.get("extra") == "forbid"
    # only AES-SIV and FF3-1 may fall back to (vectorised) Python
    assert strategy.uses_python_udf == (strategy.name in UDF_STRATEGIES)
    assert strategy.__doc__


def test_when_masking_is_imported_then_pyspark_is_not() -> None:
    code = (
        "import sys, masking, masking.catalog, masking.kanon, masking.strategies.crypto;"
        "from masking import REGISTRY;"
        "REGISTRY.get('tokenize').parse({'key': 'customer-key'});"
        "heavy = [m for m in ('pyspark', 'pandas', 'pyarrow', 'ff3', 'py4j') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_when_package_is_imported_then_all_names_resolve() -> None:
    for name in masking.__all__:
        assert getattr(masking, name) is not None
