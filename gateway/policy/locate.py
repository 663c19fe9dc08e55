"""Turn pydantic validation errors into located, steward-readable policy issues."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gateway.errors import PolicyIssue
from gateway.policy.organisation import IDENTIFIER, NAME
from gateway.policy.source import Locator

__all__ = ["did_you_mean", "issues_from_validation"]


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss among `choices`, else an empty string."""
    options = list(choices)
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not close and len(name) >= 3:
        close = sorted(c for c in options if c.startswith(name) or name.startswith(c))[:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def issues_from_validation(
    exc: ValidationError, model: type[BaseModel], locator: Locator
) -> list[PolicyIssue]:
    """One located issue per pydantic error, with did-you-mean hints for unknown keys."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if "[key]" in loc:
            path = loc[: loc.index("[key]")]
            issues.append(locator.issue(path, _message(err), at_key=True))
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(model, loc[:-1])
            issues.append(
                locator.issue(loc, f"unknown key '{key}'{did_you_mean(key, known)}", at_key=True)
            )
        elif kind == "missing":
            issues.append(
                locator.issue(loc[:-1], f"missing required key '{loc[-1]}'", at_key=True)
                if len(loc) > 1
                else locator.issue((), f"missing required key '{loc[-1]}'")
            )
        else:
            issues.append(locator.issue(_strip_tags(loc), _message(err)))
    return _dedupe(issues)


_PATTERN_HINTS = {
    NAME: " (lowercase letters, digits and '-', with '.' between levels, e.g. research.clinical)",
    IDENTIFIER: " (lowercase letters, digits and '_', starting with a letter)",
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$": " (letters, digits and '_', starting with a letter or '_')",
}


def _message(err: Any) -> str:
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if err["type"] == "string_pattern_mismatch" and isinstance(err.get("input"), str):
        hint = _PATTERN_HINTS.get(str(err.get("ctx", {}).get("pattern")), "")
        message = f"'{err['input'][:100]}' is not a valid name{hint}"
    return message


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union/function tags such as 'function-after[...]' or 'tuple[...]' to loc.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and p.endswith("]"))))


def _dedupe(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    seen: set[PolicyIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model reached by walking `loc` from `model`."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    models = [m for m in _candidates(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    return [name for m in models for name in m.model_fields]


def _step(annotation: Any, part: Any) -> Any:
    for candidate in _candidates(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            field = candidate.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        origin = get_origin(candidate)
        if origin is dict:
            return get_args(candidate)[1]
        if origin in (list, tuple) and get_args(candidate):
            return get_args(candidate)[0]
    return None


def _candidates(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _candidates(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [c for arg in get_args(annotation) for c in _candidates(arg)]
    return [annotation]
