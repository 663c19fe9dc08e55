"""An explicit registry of masking strategies by name; registering a taken name is an error."""

from __future__ import annotations

from collections.abc import Iterator

from masking.base import MaskingError, Strategy

__all__ = ["StrategyRegistry"]


class StrategyRegistry:
    """Strategies by name, in registration order."""

    def __init__(self, strategies: list[Strategy] | None = None) -> None:
        self._by_name: dict[str, Strategy] = {}
        for strategy in strategies or []:
            self.register(strategy)

    def register(self, strategy: Strategy) -> None:
        """Add a strategy; a second strategy with the same name raises MaskingError."""
        if strategy.name in self._by_name:
            raise MaskingError(f"a masking strategy named {strategy.name!r} is already registered")
        self._by_name[strategy.name] = strategy

    def get(self, name: str) -> Strategy:
        """The strategy called `name`, or MaskingError listing the known names."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise MaskingError(f"unknown masking strategy {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Strategy]:
        return iter(self._by_name.values())
