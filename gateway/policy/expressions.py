"""The policy expression language: row filters and cell-rule conditions written by data stewards.

A condition such as ``country IN ('DE', 'FR') AND age >= 18`` is parsed with lark into a frozen
AST, type-checked against the dataset schema, and then evaluated in pure Python (`evaluate`) or
compiled to a Spark Column (`gateway.policy.expr_spark`). The language has column references,
literals, comparisons, AND/OR/NOT, IN, IS NULL and BETWEEN; nothing else (no functions,
arithmetic, subqueries or comments), so steward text never reaches a SQL parser.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, TypeAlias

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from masking.types import NUMERIC_TYPES, DataType

__all__ = [
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_LENGTH",
    "And",
    "Between",
    "ColumnRef",
    "Compare",
    "Condition",
    "Expr",
    "ExpressionError",
    "InList",
    "IsNull",
    "Literal",
    "LiteralValue",
    "Not",
    "Operand",
    "Or",
    "evaluate",
    "parse_condition",
    "parse_expression",
]

MAX_LENGTH = 4_000
"""The longest expression text accepted, in characters."""
MAX_DEPTH = 50
"""The deepest nesting of parentheses and NOT accepted."""
MAX_IN_VALUES = 1_000
"""The most values one IN list may hold."""

LiteralValue: TypeAlias = str | int | float | bool | dt.date | dt.datetime | None

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that must be backquoted to be read as column names (DATE and TIMESTAMP are accepted
# bare by the parser, but render backquoted so the canonical text never depends on that).
_KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE", "DATE", "TIMESTAMP",
     "SELECT", "EXISTS"}
)  # fmt: skip
_SUBQUERY_WORDS = frozenset({"SELECT", "EXISTS"})
_UNSUPPORTED_WORDS = frozenset(
    {"LIKE", "ILIKE", "RLIKE", "REGEXP", "SIMILAR", "CASE", "WHEN", "THEN", "ELSE", "END",
     "CAST", "AS", "FROM", "WHERE", "UNION", "JOIN", "ORDER", "GROUP", "BY", "HAVING", "LIMIT",
     "ANY", "ALL", "SOME", "XOR", "DIV", "MOD", "ESCAPE"}
)  # fmt: skip
_INT_RANGES = ((DataType.INTEGER, 2**31), (DataType.LONG, 2**63))
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
)
_COMPARE_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})


class ExpressionError(ValueError):
    """A rejected expression, located by 0-based `offset` and 1-based `line` and `column`."""

    def __init__(self, message: str, offset: int, text: str) -> None:
        offset = max(0, min(offset, len(text)))
        line_start = text.rfind("\n", 0, offset) + 1
        self.message = message
        self.offset = offset
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - line_start + 1
        super().__init__(f"{message} (line {self.line}, column {self.column})")


# --------------------------------------------------------------------------- the AST


def _pos() -> Any:
    """The source offset every node carries; excluded from equality so ASTs compare by meaning."""
    return field(default=0, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class ColumnRef:
    """A reference to a column of the dataset."""

    name: str
    offset: int = _pos()

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return frozenset({self.name})

    def __str__(self) -> str:
        if _IDENT.fullmatch(self.name) and self.name.upper() not in _KEYWORDS:
            return self.name
        return "`" + self.name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Literal:
    """A constant; `type` is None only for NULL."""

    value: LiteralValue
    type: DataType | None
    offset: int = _pos()

    def columns(self) -> frozenset[str]:
        """The column names this node references (none)."""
        return frozenset()

    def __str__(self) -> str:
        value = self.value
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, float):
            return _format_float(value)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str):
            return _quote_string(value)
        if isinstance(value, dt.datetime):
            return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
        return f"DATE '{value.isoformat()}'"


Operand: TypeAlias = ColumnRef | Literal


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of ``= != < <= > >=``."""

    op: str
    left: Operand
    right: Operand
    offset: int = _pos()

    def __post_init__(self) -> None:
        if self.op not in _COMPARE_OPS:
            raise ValueError(f"unknown comparison operator {self.op!r}")

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return self.left.columns() | self.right.columns()

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class And:
    """The conjunction of two or more conditions."""

    items: tuple[Expr, ...]
    offset: int = _pos()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        if len(self.items) < 2:
            raise ValueError("And needs at least two items")

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return _union(self.items)

    def __str__(self) -> str:
        return " AND ".join(_wrap(item, (And, Or)) for item in self.items)


@dataclass(frozen=True)
class Or:
    """The disjunction of two or more conditions."""

    items: tuple[Expr, ...]
    offset: int = _pos()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        if len(self.items) < 2:
            raise ValueError("Or needs at least two items")

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return _union(self.items)

    def __str__(self) -> str:
        return " OR ".join(_wrap(item, (Or,)) for item in self.items)


@dataclass(frozen=True)
class Not:
    """The negation of a condition."""

    expr: Expr
    offset: int = _pos()

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return self.expr.columns()

    def __str__(self) -> str:
        return "NOT " + _wrap(self.expr, (And, Or))


@dataclass(frozen=True)
class InList:
    """``expr [NOT] IN (value, ...)``."""

    expr: Operand
    values: tuple[Literal, ...]
    negated: bool = False
    offset: int = _pos()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError("InList needs at least one value")

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return self.expr.columns()

    def __str__(self) -> str:
        values = ", ".join(str(value) for value in self.values)
        return f"{self.expr} {'NOT ' if self.negated else ''}IN ({values})"


@dataclass(frozen=True)
class IsNull:
    """``expr IS [NOT] NULL``."""

    expr: Operand
    negated: bool = False
    offset: int = _pos()

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return self.expr.columns()

    def __str__(self) -> str:
        return f"{self.expr} IS {'NOT ' if self.negated else ''}NULL"


@dataclass(frozen=True)
class Between:
    """``expr [NOT] BETWEEN low AND high`` (bounds included)."""

    expr: Operand
    low: Operand
    high: Operand
    negated: bool = False
    offset: int = _pos()

    def columns(self) -> frozenset[str]:
        """The column names this node references."""
        return self.expr.columns() | self.low.columns() | self.high.columns()

    def __str__(self) -> str:
        not_ = "NOT " if self.negated else ""
        return f"{self.expr} {not_}BETWEEN {self.low} AND {self.high}"


Expr: TypeAlias = ColumnRef | Literal | Compare | And | Or | Not | InList | IsNull | Between


def _union(items: Iterable[Expr]) -> frozenset[str]:
    return frozenset().union(*(item.columns() for item in items))


def _wrap(node: Expr, parenthesize: tuple[type, ...]) -> str:
    return f"({node})" if isinstance(node, parenthesize) else str(node)


def _quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_float(value: float) -> str:
    """Plain decimal digits (no exponent), exact enough that ``float(text) == value``."""
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


# --------------------------------------------------------------------------- parsing

_GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr                                     -> not_
         | predicate
?predicate: operand COMP_OP operand                         -> compare
          | operand NOT? _IN LPAR operand (_COMMA operand)* _RPAR  -> in_list
          | operand _IS NOT? NULL                            -> is_null
          | operand NOT? _BETWEEN operand _AND operand       -> between
          | LPAR or_expr _RPAR                               -> paren
          | operand
?operand: column | literal
column: IDENT | QUOTED_IDENT | DATE | TIMESTAMP
literal: STRING             -> string
       | NUMBER             -> number
       | TRUE               -> true
       | FALSE              -> false
       | NULL               -> null
       | DATE STRING        -> date
       | TIMESTAMP STRING   -> timestamp

NOT.2: /not\b/i
_AND.2: /and\b/i
_OR.2: /or\b/i
_IN.2: /in\b/i
_IS.2: /is\b/i
_BETWEEN.2: /between\b/i
NULL.2: /null\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
DATE.2: /date\b/i
TIMESTAMP.2: /timestamp\b/i
IDENT: /[A-Za-z_][A-Za-z0-9_]*/
QUOTED_IDENT: /`(?:[^`\n]|``)+`/
STRING: /'(?:[^']|'')*'/
NUMBER: /-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)/
COMP_OP: /<=|>=|<>|!=|=|<|>/
LPAR: "("
_RPAR: ")"
_COMMA: ","
WS: /[ \t\r\n]+/
%ignore WS
"""

_NAME_TOKENS = frozenset({"IDENT", "QUOTED_IDENT", "DATE", "TIMESTAMP"})


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


def _shown(text: str, limit: int = 40) -> str:
    """Steward text quoted for a message, shortened when long."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f'"{text}"' if "'" in text and '"' not in text else f"'{text}'"


class _ToAst(Transformer[Token, Any]):
    """Builds AST nodes from the lark parse tree; raises ExpressionError for bad literals."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _error(self, message: str, offset: int | None) -> ExpressionError:
        return ExpressionError(message, offset or 0, self.text)

    def column(self, children: list[Token]) -> ColumnRef:
        (token,) = children
        name = str(token)
        if token.type == "QUOTED_IDENT":
            name = name[1:-1].replace("``", "`")
        return ColumnRef(name, offset=token.start_pos or 0)

    def string(self, children: list[Token]) -> Literal:
        (token,) = children
        return Literal(_unquote(token), DataType.STRING, offset=token.start_pos or 0)

    def number(self, children: list[Token]) -> Literal:
        (token,) = children
        text, offset = str(token), token.start_pos or 0
        if "." in text:
            value = float(text)
            if math.isinf(value):
                raise self._error(f"number out of range: {_shown(text)}", offset)
            return Literal(value, DataType.DOUBLE, offset=offset)
        digits = text.lstrip("-").lstrip("0")
        number = int(text) if len(digits) <= 20 else 2**64
        for data_type, bound in _INT_RANGES:
            if -bound <= number < bound:
                return Literal(number, data_type, offset=offset)
        raise self._error(f"number out of range: {_shown(text)}", offset)

    def true(self, children: list[Token]) -> Literal:
        return Literal(True, DataType.BOOLEAN, offset=children[0].start_pos or 0)

    def false(self, children: list[Token]) -> Literal:
        return Literal(False, DataType.BOOLEAN, offset=children[0].start_pos or 0)

    def null(self, children: list[Token]) -> Literal:
        return Literal(None, None, offset=children[0].start_pos or 0)

    def date(self, children: list[Token]) -> Literal:
        keyword, string = children
        return _temporal(_unquote(string), DataType.DATE, keyword.start_pos or 0, self.text)

    def timestamp(self, children: list[Token]) -> Literal:
        keyword, string = children
        return _temporal(_unquote(string), DataType.TIMESTAMP, keyword.start_pos or 0, self.text)

    def compare(self, children: list[Any]) -> Compare:
        left, op, right = children
        return Compare("!=" if op == "<>" else str(op), left, right, offset=left.offset)

    def in_list(self, children: list[Any]) -> InList:
        expr, *rest = children
        negated = isinstance(rest[0], Token) and rest[0].type == "NOT"
        values = [item for item in rest if not isinstance(item, Token)]
        if len(values) > MAX_IN_VALUES:
            raise self._error(
                f"IN list has too many values (more than {MAX_IN_VALUES:,})",
                values[MAX_IN_VALUES].offset,
            )
        for value in values:
            if isinstance(value, ColumnRef):
                name = _shown(value.name)
                message = f"IN lists may only contain literal values, not column {name}"
                raise self._error(message, value.offset)
        return InList(expr, tuple(values), negated, offset=expr.offset)

    def is_null(self, children: list[Any]) -> IsNull:
        expr = children[0]
        negated = any(isinstance(c, Token) and c.type == "NOT" for c in children)
        return IsNull(expr, negated, offset=expr.offset)

    def between(self, children: list[Any]) -> Between:
        expr, *rest = children
        negated = isinstance(rest[0], Token)
        low, high = rest[-2:]
        return Between(expr, low, high, negated, offset=expr.offset)

    def not_(self, children: list[Any]) -> Not:
        keyword, expr = children
        return Not(expr, offset=keyword.start_pos or 0)

    def and_expr(self, children: list[Expr]) -> And:
        return And(tuple(children), offset=children[0].offset)

    def or_expr(self, children: list[Expr]) -> Or:
        return Or(tuple(children), offset=children[0].offset)

    def paren(self, children: list[Any]) -> Expr:
        node: Expr = children[1]
        return node


def _unquote(token: Token) -> str:
    return str(token)[1:-1].replace("''", "'")


def _temporal(text: str, data_type: DataType, offset: int, source: str) -> Literal:
    """A DATE or TIMESTAMP literal from its 'YYYY-MM-DD[ HH:MM:SS]' text."""
    pattern = _DATE_RE if data_type is DataType.DATE else _TIMESTAMP_RE
    match = pattern.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        value: dt.date = (
            dt.date.fromisoformat(text)
            if data_type is DataType.DATE
            else dt.datetime.fromisoformat(text)
        )
    except ValueError:
        expected = "YYYY-MM-DD" if data_type is DataType.DATE else "YYYY-MM-DD HH:MM:SS"
        message = f"invalid {data_type.value} {_shown(text)} (expected '{expected}')"
        raise ExpressionError(message, offset, source) from None
    return Literal(value, data_type, offset=offset)


def _lex_error(exc: UnexpectedCharacters, text: str) -> ExpressionError:
    pos = exc.pos_in_stream or 0
    char, pair = text[pos], text[pos : pos + 2]
    if pair in ("--", "/*"):
        message = f"comments are not allowed: '{pair}'"
    elif char == "'":
        message = "unterminated string literal"
    elif char == "`":
        empty = pair == "``"
        message = "quoted column name is empty" if empty else "unterminated quoted column name"
    elif char == '"':
        message = (
            "double quotes are not allowed: use single quotes for text and backquotes for "
            "column names"
        )
    elif char in "+-*/%":
        message = f"arithmetic is not allowed: '{char}'"
    elif not char.isprintable() or char.isspace():
        message = f"unexpected character U+{ord(char):04X}"
    else:
        message = f"unexpected '{char}'"
    return ExpressionError(message, pos, text)


def _scan(tokens: list[Token], text: str) -> None:
    """Catch what the grammar would only call 'unexpected': functions, subqueries, '=='."""
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        offset = token.start_pos or 0
        if token.type == "IDENT" and token.upper() in _SUBQUERY_WORDS:
            raise ExpressionError(f"subqueries are not allowed: {_shown(token)}", offset, text)
        if token.type in _NAME_TOKENS and following is not None and following.type == "LPAR":
            raise ExpressionError(
                f"function calls are not allowed: {_shown(str(token) + '(')}", offset, text
            )
        if token == "=" and following == "=" and following.start_pos == token.end_pos:
            raise ExpressionError("use '=' instead of '=='", offset, text)


def _parse_error(exc: UnexpectedToken, tokens: list[Token], text: str) -> ExpressionError:
    token = exc.token
    if token.type == "$END":
        depth = sum((t.type == "LPAR") - (t.type == "_RPAR") for t in tokens)
        hint = " (missing ')')" if depth > 0 else ""
        return ExpressionError(f"unexpected end of expression{hint}", len(text), text)
    offset = token.start_pos or 0
    if token.type == "NUMBER" and token.startswith("-"):
        return ExpressionError("arithmetic is not allowed: '-'", offset, text)
    if token.type == "IDENT" and token.upper() in _UNSUPPORTED_WORDS:
        return ExpressionError(f"{_shown(token)} is not supported", offset, text)
    return ExpressionError(f"unexpected {_shown(token)}", offset, text)


def _check_depth(tree: Tree[Token], text: str) -> None:
    """Reject nesting deeper than MAX_DEPTH without recursing (so never a RecursionError)."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in ("paren", "not_"):
            depth += 1
            if depth > MAX_DEPTH:
                offset = node.children[0].start_pos if isinstance(node.children[0], Token) else 0
                message = (
                    f"expression is nested too deeply (more than {MAX_DEPTH} levels of "
                    "parentheses or NOT)"
                )
                raise ExpressionError(message, offset or 0, text)
        stack.extend((child, depth) for child in node.children if isinstance(child, Tree))


def parse_expression(text: str) -> Expr:
    """Parse expression text to an AST without looking at any schema; raises ExpressionError."""
    if not isinstance(text, str):
        raise ExpressionError("expression must be text", 0, "")
    if len(text) > MAX_LENGTH:
        message = f"expression is too long ({len(text):,} characters; the limit is {MAX_LENGTH:,})"
        raise ExpressionError(message, MAX_LENGTH, text)
    if not text.strip(" \t\r\n"):
        raise ExpressionError("expression is empty", 0, text)
    parser = _parser()
    try:
        tokens = list(parser.lex(text))
    except UnexpectedCharacters as exc:
        raise _lex_error(exc, text) from None
    _scan(tokens, text)
    try:
        tree = parser.parse(text)
    except UnexpectedToken as exc:
        raise _parse_error(exc, tokens, text) from None
    except UnexpectedInput as exc:  # any other lark complaint, located where lark saw it
        raise ExpressionError("unexpected input", exc.pos_in_stream or 0, text) from None
    _check_depth(tree, text)
    try:
        node: Expr = _ToAst(text).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ExpressionError):
            raise exc.orig_exc from None
        raise
    return node


# --------------------------------------------------------------------------- type checking


@dataclass(frozen=True)
class Condition:
    """A parsed, type-checked condition: the steward's `text`, its `ast` and the `columns` used."""

    text: str
    ast: Expr
    columns: frozenset[str]

    def __str__(self) -> str:
        return str(self.ast)


def parse_condition(text: str, schema: Mapping[str, DataType]) -> Condition:
    """Parse and type-check a boolean condition over `schema`; raises ExpressionError."""
    checker = _Checker(schema, text if isinstance(text, str) else "")
    ast = checker.condition(parse_expression(text))
    columns = ast.columns()
    if not columns:
        raise ExpressionError("condition does not reference any column", 0, text)
    return Condition(text, ast, columns)


def _family(data_type: DataType) -> str:
    return "number" if data_type in NUMERIC_TYPES else data_type.value


_A_KIND = {"number": "a number", "string": "a string", "boolean": "a boolean",
           "date": "a date", "timestamp": "a timestamp"}  # fmt: skip


class _Checker:
    """Resolves columns against the schema and checks that every operation is well typed."""

    def __init__(self, schema: Mapping[str, DataType], text: str) -> None:
        self.schema = {name: DataType(t) for name, t in schema.items()}
        self.text = text

    def _error(self, message: str, node: Expr) -> ExpressionError:
        return ExpressionError(message, node.offset, self.text)

    def condition(self, node: Expr) -> Expr:
        """The node, checked to be boolean, with columns resolved and literals converted."""
        if isinstance(node, And | Or):
            return type(node)(tuple(self.condition(i) for i in node.items), offset=node.offset)
        if isinstance(node, Not):
            return Not(self.condition(node.expr), offset=node.offset)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, InList):
            return self._in_list(node)
        if isinstance(node, IsNull):
            return IsNull(self._column_operand(node.expr), node.negated, offset=node.offset)
        if isinstance(node, Between):
            return self._between(node)
        if isinstance(node, ColumnRef):
            column, data_type = self._resolve(node)
            if data_type is not DataType.BOOLEAN:
                message = f"{self._describe(column)} is not a condition; compare it with a value"
                raise self._error(message, node)
            return column
        if node.type is not DataType.BOOLEAN:
            kind = "NULL" if node.type is None else _A_KIND[_family(node.type)]
            raise self._error(f"{kind} is not a condition", node)
        return node

    def _resolve(self, ref: ColumnRef) -> tuple[ColumnRef, DataType]:
        if ref.name in self.schema:
            return ref, self.schema[ref.name]
        folded = {name.lower(): name for name in self.schema}
        if ref.name.lower() in folded and len(folded) == len(self.schema):
            name = folded[ref.name.lower()]
            return ColumnRef(name, offset=ref.offset), self.schema[name]
        close = difflib.get_close_matches(ref.name.lower(), list(folded), n=1)
        hint = f" (did you mean {_shown(folded[close[0]])}?)" if close else ""
        raise self._error(f"unknown column {_shown(ref.name)}{hint}", ref)

    def _describe(self, column: ColumnRef) -> str:
        return f"{self.schema[column.name].value} column {_shown(column.name)}"

    def _column_operand(self, operand: Operand) -> ColumnRef:
        if isinstance(operand, Literal):
            raise self._error("comparison does not reference any column", operand)
        return self._resolve(operand)[0]

    def _fit(self, column: ColumnRef, other: Operand) -> Operand:
        """`other` made comparable with `column`, converting 'YYYY-MM-DD' text for dates."""
        target = self.schema[column.name]
        if isinstance(other, ColumnRef):
            other = self._resolve(other)[0]
            if _family(self.schema[other.name]) != _family(target):
                message = f"cannot compare {self._describe(column)} with {self._describe(other)}"
                raise self._error(message, other)
            return other
        if other.type is None:
            raise self._error("NULL is not a value here; use IS NULL", other)
        if _family(other.type) == _family(target):
            return other
        if target in (DataType.DATE, DataType.TIMESTAMP) and other.type is DataType.STRING:
            return _temporal(str(other.value), target, other.offset, self.text)
        kind = _A_KIND[_family(other.type)]
        raise self._error(f"cannot compare {self._describe(column)} with {kind}", other)

    def _compare(self, node: Compare) -> Compare:
        left, right = node.left, node.right
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise self._error("comparison does not reference any column", node)
        null = left if isinstance(left, Literal) and left.type is None else right
        if isinstance(null, Literal) and null.type is None:
            if node.op in ("=", "!="):
                is_ = "IS NULL" if node.op == "=" else "IS NOT NULL"
                raise self._error(f"use '{is_}' instead of '{node.op} NULL'", null)
            message = f"cannot compare with NULL using '{node.op}'; use IS NULL or IS NOT NULL"
            raise self._error(message, null)
        if isinstance(left, ColumnRef):
            column = self._resolve(left)[0]
            left, right = column, self._fit(column, right)
        else:
            column = self._column_operand(right)
            left, right = self._fit(column, left), column
        if self.schema[column.name] is DataType.BOOLEAN and node.op not in ("=", "!="):
            message = f"{self._describe(column)} can only be compared with = or !="
            raise self._error(message, node)
        return Compare(node.op, left, right, offset=node.offset)

    def _in_list(self, node: InList) -> InList:
        column = self._column_operand(node.expr)
        values: list[Literal] = []
        for value in node.values:
            if value.type is None:
                raise self._error("NULL is not allowed in an IN list; use IS NULL", value)
            fitted = self._fit(column, value)
            assert isinstance(fitted, Literal)
            values.append(fitted)
        return InList(column, tuple(values), node.negated, offset=node.offset)

    def _between(self, node: Between) -> Between:
        operands = (node.expr, node.low, node.high)
        refs = [o for o in operands if isinstance(o, ColumnRef)]
        if not refs:
            raise self._error("comparison does not reference any column", node)
        for operand in operands:
            if isinstance(operand, Literal) and operand.type is None:
                raise self._error("NULL is not allowed in BETWEEN; use IS NULL", operand)
        column = self._resolve(refs[0])[0]
        if self.schema[column.name] is DataType.BOOLEAN:
            raise self._error(f"BETWEEN does not apply to {self._describe(column)}", column)
        expr, low, high = (self._fit(column, operand) for operand in operands)
        if (
            isinstance(low, Literal)
            and isinstance(high, Literal)
            and _order(low.value, high.value) > 0
        ):
            message = f"BETWEEN bounds are in the wrong order: {low} is greater than {high}"
            raise self._error(message, low)
        return Between(expr, low, high, node.negated, offset=node.offset)


# --------------------------------------------------------------------------- evaluation


def evaluate(condition: Condition | Expr, row: Mapping[str, object]) -> bool | None:
    """The condition's value for one row with Spark's SQL NULL semantics (None means NULL)."""
    node = condition.ast if isinstance(condition, Condition) else condition
    result = _eval(node, row)
    if result is not None and not isinstance(result, bool):
        raise TypeError(f"condition evaluated to {type(result).__name__}, not a boolean")
    return result


def _eval(node: Expr, row: Mapping[str, object]) -> object:
    if isinstance(node, ColumnRef):
        value = row[node.name]
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Compare):
        return _compare(node.op, _eval(node.left, row), _eval(node.right, row))
    if isinstance(node, Not):
        value = _eval(node.expr, row)
        return None if value is None else not value
    if isinstance(node, And):
        return _kleene_and(_eval(item, row) for item in node.items)
    if isinstance(node, Or):
        values = [_eval(item, row) for item in node.items]
        return True if True in values else (None if None in values else False)
    if isinstance(node, IsNull):
        return (_eval(node.expr, row) is None) != node.negated
    if isinstance(node, InList):
        value = _eval(node.expr, row)
        found = [_compare("=", value, _eval(item, row)) for item in node.values]
        result = True if True in found else (None if None in found else False)
        return _negate(result) if node.negated else result
    value = _eval(node.expr, row)
    low, high = _eval(node.low, row), _eval(node.high, row)
    result = _kleene_and([_compare(">=", value, low), _compare("<=", value, high)])
    return _negate(result) if node.negated else result


def _kleene_and(values: Iterable[object]) -> bool | None:
    seen = list(values)
    return False if False in seen else (None if None in seen else True)


def _negate(value: bool | None) -> bool | None:
    return None if value is None else not value


def _order(left: Any, right: Any) -> int:
    """-1, 0 or 1 as Spark orders values: NaN equals NaN and is above every other number."""
    left_nan = isinstance(left, float) and math.isnan(left)
    right_nan = isinstance(right, float) and math.isnan(right)
    if left_nan or right_nan:
        return int(left_nan) - int(right_nan)
    return int(left > right) - int(left < right)


def _compare(op: str, left: object, right: object) -> bool | None:
    if left is None or right is None:
        return None
    order = _order(left, right)
    return {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
    }[op]
