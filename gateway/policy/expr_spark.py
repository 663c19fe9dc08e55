"""Compile a policy condition to a Spark Column with `pyspark.sql.functions` builders only.

Every AST node maps to one Column operation (`F.col`, `F.lit`, `isin`, `between`, `isNull`,
comparison operators, ``& | ~``), so steward text is never handed to a SQL parser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F

from gateway.policy.expressions import (
    And,
    Between,
    ColumnRef,
    Compare,
    Condition,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Operand,
    Or,
)

__all__ = ["spark_column_name", "to_spark_column"]

_OPERATORS: dict[str, Callable[[Column, Column], Column]] = {
    "=": lambda left, right: left == right,
    "!=": lambda left, right: left != right,
    "<": lambda left, right: left < right,
    "<=": lambda left, right: left <= right,
    ">": lambda left, right: left > right,
    ">=": lambda left, right: left >= right,
}


def spark_column_name(name: str) -> str:
    """`name` backquoted for `F.col`, so dots, spaces and backquotes are taken literally."""
    return "`" + name.replace("`", "``") + "`"


def to_spark_column(condition: Condition | Expr) -> Column:
    """The condition as a boolean Spark Column (NULL where SQL would give NULL)."""
    node = condition.ast if isinstance(condition, Condition) else condition
    return _compile(node)


def _operand(node: Operand) -> Column:
    if isinstance(node, ColumnRef):
        return F.col(spark_column_name(node.name))
    value = node.value
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        # Naive timestamps mean the session time zone, which the gateway pins to UTC.
        value = value.replace(tzinfo=dt.UTC)
    return F.lit(value)


def _compile(node: Expr) -> Column:
    if isinstance(node, ColumnRef | Literal):
        return _operand(node)
    if isinstance(node, Compare):
        return _OPERATORS[node.op](_operand(node.left), _operand(node.right))
    if isinstance(node, And):
        return reduce(lambda left, right: left & right, (_compile(i) for i in node.items))
    if isinstance(node, Or):
        return reduce(lambda left, right: left | right, (_compile(i) for i in node.items))
    if isinstance(node, Not):
        return ~_compile(node.expr)
    if isinstance(node, IsNull):
        column = _operand(node.expr)
        return column.isNotNull() if node.negated else column.isNull()
    if isinstance(node, InList):
        found = _operand(node.expr).isin(*(_operand(value) for value in node.values))
        return ~found if node.negated else found
    if isinstance(node, Between):
        between = _operand(node.expr).between(_operand(node.low), _operand(node.high))
        return ~between if node.negated else between
    raise TypeError(f"not a condition node: {node!r}")
