"""The default registry: every built-in strategy under the name the policy language uses."""

from __future__ import annotations

from masking.base import Strategy
from masking.registry import StrategyRegistry
from masking.strategies.basic import ConstantStrategy, NullifyStrategy, RegexReplaceStrategy
from masking.strategies.crypto import EncryptDeterministicStrategy, FpeStrategy
from masking.strategies.generalize import (
    AgeBandStrategy,
    BucketStrategy,
    GeneralizeDateStrategy,
    IpPrefixStrategy,
    RoundStrategy,
)
from masking.strategies.hashing import HashStrategy, TokenizeStrategy
from masking.strategies.partial import (
    CardNumberStrategy,
    CharClassStrategy,
    EmailStrategy,
    PartialStrategy,
    PhoneStrategy,
    TruncateStrategy,
)
from masking.strategies.perturb import (
    DateShiftStrategy,
    NoiseStrategy,
    RandomizedResponseStrategy,
)

__all__ = ["BUILTIN_STRATEGIES", "REGISTRY", "build_registry"]

#: The built-in strategy classes, in catalogue order.
BUILTIN_STRATEGIES: tuple[type[Strategy], ...] = (
    NullifyStrategy,
    ConstantStrategy,
    RegexReplaceStrategy,
    HashStrategy,
    TokenizeStrategy,
    EncryptDeterministicStrategy,
    FpeStrategy,
    PartialStrategy,
    CharClassStrategy,
    EmailStrategy,
    PhoneStrategy,
    CardNumberStrategy,
    TruncateStrategy,
    BucketStrategy,
    RoundStrategy,
    GeneralizeDateStrategy,
    AgeBandStrategy,
    IpPrefixStrategy,
    DateShiftStrategy,
    RandomizedResponseStrategy,
    NoiseStrategy,
)


def build_registry() -> StrategyRegistry:
    """A fresh registry holding one instance of every built-in strategy."""
    return StrategyRegistry([cls() for cls in BUILTIN_STRATEGIES])


#: The shared default registry (extend a `build_registry()` copy rather than this one).
REGISTRY: StrategyRegistry = build_registry()
