"""Entry points for spark-submit; each runs the same code path as its CLI command."""

__all__: list[str] = []
