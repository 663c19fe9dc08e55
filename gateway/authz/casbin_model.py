"""The Casbin model and policy lines, generated from the steward files (never written by hand).

    p, role:<role>, <dataset|*>, <purpose|*>, <action>, allow     per role, dataset, purpose, action
    p, role:<r>|principal:<name>, <dataset|*>, <purpose|*>, <action|*>, deny    per deny rule

The request is `(subjects, dataset|*, purpose, action)` where `subjects` is the set of
subject tokens the caller holds (`role:<r>` for each role of the credential, and
`principal:<subject>`); the matcher's custom `holds` tests membership and `purposeCovers`
is `gateway.policy.purpose_covers` (a grant for `research` covers `research.clinical`,
not the reverse; `*` covers all). There are no `g` lines: roles are resolved per
credential (an API key holds a subset of its principal's roles, IdP claims map through
`role_map`, scoped tokens narrow further), so a static principal->role graph in the
enforcer would widen a narrowed credential. A deny on any held role or on the subject
overrides every grant (`some(allow) && !some(deny)`). A deny naming a principal matches
every credential with that subject, whatever its issuer: it errs towards refusing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import casbin

from gateway.policy.loader import PolicySet
from gateway.policy.organisation import purpose_covers

__all__ = [
    "ALLOW_AND_DENY",
    "ALLOW_OVERRIDE",
    "CASBIN_MODEL",
    "DENY_OVERRIDE",
    "CasbinPolicy",
    "PolicyLine",
    "compile_policy",
    "principal_subject",
    "role_subject",
]

ALLOW_AND_DENY = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"
"""The decision effect: some grant matches and no deny does."""
ALLOW_OVERRIDE = "some(where (p.eft == allow))"
"""The explainer's effect: Casbin stops at, and so names, the first matching grant."""
DENY_OVERRIDE = "!some(where (p.eft == deny))"
"""The deny probe's effect: Casbin stops at, and so names, the first matching deny."""

_MODEL = """\
[request_definition]
r = sub, obj, purpose, act

[policy_definition]
p = sub, obj, purpose, act, eft

[policy_effect]
e = {effect}

[matchers]
m = holds(r.sub, p.sub) && (p.obj == "*" || p.obj == r.obj) \
&& purposeCovers(p.purpose, r.purpose) && (p.act == "*" || p.act == r.act)
"""

CASBIN_MODEL = _MODEL.format(effect=ALLOW_AND_DENY)
"""The model conf of the decision engine."""


def role_subject(role: str) -> str:
    """The Casbin subject token of a role."""
    return f"role:{role}"


def principal_subject(subject: str) -> str:
    """The Casbin subject token of a principal (deny rules naming `principal:`)."""
    return f"principal:{subject}"


def _holds(subjects: Collection[str], sub: str) -> bool:
    return sub in subjects


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """One generated `p` line, with the steward-file entry it came from."""

    sub: str
    obj: str
    purpose: str
    act: str
    eft: Literal["allow", "deny"]
    source: str
    """`roles.<role>` or `deny[<i>]`: where in the organisation file the line comes from."""
    reason: str
    """The deny rule's reason ('' for grants)."""
    order: int
    """Position in the generated policy: Casbin names the first matching line."""

    @property
    def values(self) -> list[str]:
        """The line as Casbin stores it."""
        return [self.sub, self.obj, self.purpose, self.act, self.eft]

    @property
    def rule(self) -> str:
        """The audit name of the line: `<source>: p, sub, obj, purpose, act, eft`."""
        return f"{self.source}: p, {', '.join(self.values)}"


class CasbinPolicy:
    """The generated model and lines of one policy set, and enforcers built from them."""

    __slots__ = ("_by_values", "lines", "model_text")

    def __init__(self, lines: Iterable[PolicyLine]) -> None:
        self.model_text = CASBIN_MODEL
        self.lines: tuple[PolicyLine, ...] = tuple(lines)
        self._by_values = {tuple(line.values): line for line in self.lines}

    def line(self, values: Sequence[str]) -> PolicyLine:
        """The line Casbin returned from `enforce_ex` (KeyError when it is not one of ours)."""
        return self._by_values[tuple(values)]

    def policy_text(self) -> str:
        """The lines in Casbin's CSV policy format (for `gateway policy` tooling and review)."""
        return "".join(f"p, {', '.join(line.values)}\n" for line in self.lines)

    def new_enforcer(
        self, effect: str = ALLOW_AND_DENY, lines: Iterable[PolicyLine] | None = None
    ) -> Any:
        """A new plain `casbin.Enforcer` with `lines` (default: all) and the custom functions.

        Not thread safe (pycasbin's enforce shares state between calls): callers serialise.
        """
        enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=_MODEL.format(effect=effect)))
        enforcer.add_function("purposeCovers", purpose_covers)
        enforcer.add_function("holds", _holds)
        values = [line.values for line in (self.lines if lines is None else lines)]
        if values:
            enforcer.add_policies(values)
        return enforcer


def compile_policy(policies: PolicySet) -> CasbinPolicy:
    """Generate the Casbin lines of a policy set: grants in role order, then deny rules."""
    org = policies.organisation
    lines: list[PolicyLine] = []
    seen: set[tuple[str, ...]] = set()

    def add(
        sub: str,
        obj: str,
        purpose: str,
        act: str,
        eft: Literal["allow", "deny"],
        src: str,
        why: str,
    ) -> None:
        key = (sub, obj, purpose, act, eft)
        if key not in seen:  # Casbin refuses duplicate lines; the first one names the rule
            seen.add(key)
            lines.append(PolicyLine(sub, obj, purpose, act, eft, src, why, len(lines)))

    for name, role in org.roles.items():
        for dataset in dict.fromkeys(role.datasets):
            for purpose in dict.fromkeys(role.purposes):
                for action in dict.fromkeys(role.actions):
                    add(
                        role_subject(name),
                        dataset,
                        purpose,
                        action.value,
                        "allow",
                        f"roles.{name}",
                        "",
                    )
    for i, rule in enumerate(org.deny):
        sub = (
            role_subject(rule.role)
            if rule.role is not None
            else principal_subject(str(rule.principal))
        )
        act = rule.action.value if rule.action is not None else "*"
        add(sub, rule.dataset, rule.purpose, act, "deny", f"deny[{i}]", rule.reason)
    return CasbinPolicy(lines)
