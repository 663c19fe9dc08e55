"""Read one policy YAML file into plain Python data plus the line and column of every node.

The loader never evaluates tags, refuses anchors and aliases (no billion-laughs), refuses
duplicate keys and non-string keys, and bounds the file size, so that whatever a file
contains the result is either plain data or a list of located issues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import PolicyIssue

__all__ = ["MAX_POLICY_BYTES", "Located", "Locator", "parse_yaml_text", "read_yaml"]

MAX_POLICY_BYTES = 1_048_576
MAX_NODES = 200_000

Path_ = tuple[str | int, ...]


@dataclass
class Locator:
    """Maps a node path (keys and list indices) to its 1-based (line, column) in one file."""

    file: str
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path_, str] = field(default_factory=dict)

    def within(self, path: Path_, line: int, column: int) -> tuple[int, int]:
        """File position of (line, column) inside the string value at `path` (both 1-based)."""
        start_line, start_column = self.value(path)
        style = self.styles.get(tuple(path), "")
        if style in ("|", ">"):
            return start_line + line, column
        if line == 1:
            return start_line, start_column + column - 1 + (1 if style in ("'", '"') else 0)
        return start_line + line - 1, column

    def key(self, path: Path_) -> tuple[int, int]:
        """Where the key of `path` stands (falls back to the nearest located ancestor)."""
        return self._find(path, self.keys, self.values)

    def value(self, path: Path_) -> tuple[int, int]:
        """Where the value of `path` starts (falls back to its key, then an ancestor)."""
        return self._find(path, self.values, self.keys)

    @staticmethod
    def _find(
        path: Path_, first: dict[Path_, tuple[int, int]], second: dict[Path_, tuple[int, int]]
    ) -> tuple[int, int]:
        probe = tuple(path)
        while probe:
            if probe in first:
                return first[probe]
            if probe in second:
                return second[probe]
            probe = probe[:-1]
        return (1, 1)

    def issue(self, path: Path_, message: str, *, at_key: bool = False) -> PolicyIssue:
        """A PolicyIssue located at `path` (its key or its value)."""
        line, column = self.key(path) if at_key else self.value(path)
        return PolicyIssue(self.file, line, column, dotted(path), message)


@dataclass(frozen=True)
class Located:
    """A parsed file: its plain data and the locator of its nodes."""

    data: Any
    locator: Locator


def dotted(path: Path_) -> str:
    """Render a node path as `columns.email.protect` or `roles.x.purposes[2]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(path: Path) -> Located | list[PolicyIssue]:
    """Parse a policy file; returns its data or the issues that stopped parsing."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            return [
                PolicyIssue(
                    name,
                    1,
                    1,
                    "",
                    f"file is {size} bytes; policy files are limited to {MAX_POLICY_BYTES}",
                )
            ]
        raw = path.read_bytes()
    except OSError as exc:
        return [PolicyIssue(name, 1, 1, "", f"cannot read file: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [PolicyIssue(name, 1, 1, "", f"file is not UTF-8 text (byte {exc.start})")]
    return parse_yaml_text(text, name)


def parse_yaml_text(text: str, name: str) -> Located | list[PolicyIssue]:
    """Parse YAML text of a policy file named `name` (used in messages)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.preserve_quotes = True
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return [PolicyIssue(name, line, column, "", f"invalid YAML: {_first_line(problem)}")]
    except (YAMLError, ValueError, TypeError, RecursionError, AttributeError) as exc:
        return [PolicyIssue(name, 1, 1, "", f"invalid YAML: {_first_line(str(exc))}")]
    locator = Locator(name)
    issues: list[PolicyIssue] = []
    walker = _Walker(locator, issues)
    try:
        data = walker.plain(node, ())
    except RecursionError:
        return [PolicyIssue(name, 1, 1, "", "the document is nested too deeply")]
    return issues if issues else Located(data, locator)


def _first_line(text: str) -> str:
    text = " ".join(text.split())
    return text[:300] if text else "could not parse"


class _Walker:
    """Turns ruamel's round-trip nodes into plain data while recording locations."""

    def __init__(self, locator: Locator, issues: list[PolicyIssue]) -> None:
        self.locator = locator
        self.issues = issues
        self.seen: set[int] = set()
        self.count = 0

    def plain(self, node: Any, path: Path_) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.issues.append(self.locator.issue(path, f"more than {MAX_NODES} YAML nodes"))
            return None
        if isinstance(node, CommentedMap | CommentedSeq):
            if (
                id(node) in self.seen
                or (getattr(node, "anchor", None) is not None
                and node.anchor.value)
            ):
                self.issues.append(
                    self.locator.issue(path, "anchors and aliases are not allowed in policy files")
                )
                return None
            self.seen.add(id(node))
        if isinstance(node, CommentedMap):
            return self._mapping(node, path)
        if isinstance(node, CommentedSeq):
            out = []
            for index, item in enumerate(node):
                try:
                    line, column = node.lc.item(index)
                    self.locator.values[(*path, index)] = (line + 1, column + 1)
                except (KeyError, TypeError, AttributeError):
                    pass
                out.append(self.plain(item, (*path, index)))
            return out
        if (
            isinstance(node, TaggedScalar)
            or (getattr(node, "tag", None) is not None
            and _has_tag(node))
        ):
            self.issues.append(
                self.locator.issue(path, "YAML tags are not allowed in policy files")
            )
            return None
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            style = getattr(node, "style", None)
            if style:
                self.locator.styles[path] = str(style)
            return str(node)
        if isinstance(node, dt.datetime | dt.date):
            return node.isoformat()
        self.issues.append(
            self.locator.issue(path, f"unsupported YAML value of type {type(node).__name__}")
        )
        return None

    def _mapping(self, node: Mapping[Any, Any], path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lc = getattr(node, "lc", None)
        for key, value in node.items():
            if not isinstance(key, str):
                self.issues.append(
                    self.locator.issue(path, f"keys must be text, found {_describe(key)}")
                )
                continue
            child = (*path, str(key))
            if lc is not None:
                try:
                    kl, kc, vl, vc = lc.data[key]
                    self.locator.keys[child] = (kl + 1, kc + 1)
                    self.locator.values[child] = (vl + 1, vc + 1)
                except (KeyError, TypeError, ValueError):
                    pass
            out[str(key)] = self.plain(value, child)
        return out


def _has_tag(node: Any) -> bool:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None)
    return bool(value) and not str(value).startswith("tag:yaml.org,2002:")


def _describe(key: Any) -> str:
    if key is None:
        return "an empty key"
    return f"{type(key).__name__} {key!r}"[:80]
