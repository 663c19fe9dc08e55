"""The organisation policy: clearances, purposes and their hierarchy, roles, principals, IdPs."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Action",
    "DenyRule",
    "IdentityProvider",
    "OrganisationPolicy",
    "Principal",
    "Purpose",
    "Role",
    "purpose_covers",
]

NAME = r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$"
Name = Annotated[str, Field(pattern=NAME, max_length=100)]
IDENTIFIER = r"^[a-z][a-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER, max_length=100)]


class Frozen(BaseModel):
    """Base of every policy model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Action(StrEnum):
    """What a principal may do; every API route and CLI command maps to one."""

    INGEST = "ingest"
    READ_FEATURES = "read_features"
    DP_QUERY = "dp_query"
    HE_COMPUTE = "he_compute"
    SYNTHESIZE = "synthesize"
    PUBLISH = "publish"
    REIDENTIFY = "reidentify"
    AUDIT_READ = "audit_read"
    ADMIN = "admin"


class Purpose(Frozen):
    """A purpose a principal must acknowledge before using data for it."""

    statement: str = Field(min_length=10, max_length=4000)
    legal_basis: str | None = Field(default=None, max_length=100)
    retention: str | None = Field(default=None, pattern=r"^\d+[dwmy]$")

    @property
    def statement_version(self) -> str:
        """A short hash of the statement text: acknowledgements are per version."""
        return hashlib.sha256(self.statement.encode()).hexdigest()[:12]


class Role(Frozen):
    """A role: the purposes it may pursue, the actions it may take, and its clearance."""

    purposes: tuple[str, ...] = Field(min_length=1)
    actions: tuple[Action, ...] = Field(min_length=1)
    clearance: str
    datasets: tuple[str, ...] = ("*",)
    description: str | None = None


class Principal(Frozen):
    """A known subject (service account or person) and the roles it holds."""

    roles: tuple[str, ...] = Field(min_length=1)
    description: str | None = None


class IdentityProvider(Frozen):
    """An OIDC identity provider whose tokens are accepted, and how claims map to roles."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks: str = Field(min_length=1, description="Path or https URL of the provider's JWKS.")
    algorithms: tuple[str, ...] = ("RS256",)
    subject_claim: str = "sub"
    roles_claim: str = "groups"
    role_map: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}
        bad = [alg for alg in value if alg not in allowed]
        if bad:
            raise ValueError(
                f"algorithm {bad[0]!r} is not accepted from an identity provider "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        return value


class DenyRule(Frozen):
    """An explicit deny that overrides any grant: matched on role or principal, purpose, action."""

    role: str | None = None
    principal: str | None = None
    purpose: str = "*"
    action: Action | None = None
    dataset: str = "*"
    reason: str = Field(min_length=3)

    @model_validator(mode="after")
    def _names_a_subject(self) -> DenyRule:
        if (self.role is None) == (self.principal is None):
            raise ValueError("a deny rule names exactly one of 'role' or 'principal'")
        return self


class OrganisationPolicy(Frozen):
    """The organisation file: the vocabulary every dataset file and request uses."""

    organisation: str = Field(min_length=1, max_length=200)
    clearances: tuple[Name, ...] = Field(min_length=1)
    purposes: dict[Name, Purpose] = Field(min_length=1)
    roles: dict[Name, Role] = Field(min_length=1)
    principals: dict[str, Principal] = Field(default_factory=dict)
    identity_providers: tuple[IdentityProvider, ...] = ()
    deny: tuple[DenyRule, ...] = ()
    min_aggregate_rows: int = Field(default=10, ge=1)

    @field_validator("clearances")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("clearance levels must be distinct")
        return value

    @field_validator("principals")
    @classmethod
    def _principal_names(cls, value: dict[str, Principal]) -> dict[str, Principal]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}", name):
                raise ValueError(f"principal name {name!r} must be letters, digits and _.@-")
        return value

    def clearance_rank(self, level: str) -> int:
        """Position of a clearance level (0 = least sensitive); ValueError when unknown."""
        return self.clearances.index(level)

    def covers(self, held: str, needed: str) -> bool:
        """True when clearance `held` is at least `needed`."""
        return self.clearance_rank(held) >= self.clearance_rank(needed)


def purpose_covers(granted: str, requested: str) -> bool:
    """True when a grant for `granted` covers `requested` (`research` covers `research.x`)."""
    return granted == "*" or requested == granted or requested.startswith(granted + ".")
