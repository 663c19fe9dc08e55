"""The authenticated caller: who it is, which roles it holds now, and how it proved it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.errors import AuthenticationFailed
from gateway.policy.organisation import OrganisationPolicy

__all__ = ["AuthMethod", "Principal", "resolve_roles"]

AuthMethod = Literal["api_key", "jwt", "dev_token", "scoped_token", "local"]
"""How a principal authenticated; `scoped_token` is the gateway's own purpose-bound token."""

SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}")
"""Subjects the gateway itself names (API keys, dev tokens): the policy's principal names."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller, with roles resolved against the policy in force.

    `issuer` says who vouches for `subject`: the IdP issuer for JWTs (and scoped tokens
    exchanged from one), `gateway-dev` for dev tokens, None for the policy's own
    principals (API keys). Subjects are unique only per issuer.
    """

    subject: str
    roles: tuple[str, ...]
    clearance: str
    auth_method: AuthMethod
    credential_id: str
    """The API key id or the token id (jti), safe to record in the audit log."""
    expires_at: datetime | None
    issuer: str | None = None
    bound_purpose: str | None = None
    bound_features: tuple[str, ...] | None = None
    exchanged_from: str | None = None
    """For scoped tokens: `<auth_method>:<credential_id>` of the credential exchanged."""

    def __post_init__(self) -> None:
        if not self.roles:
            raise ValueError("a principal holds at least one role")

    @property
    def credential(self) -> str:
        """`<auth_method>:<credential_id>`, the audit log's name for the credential used."""
        return f"{self.auth_method}:{self.credential_id}"


def resolve_roles(org: OrganisationPolicy, names: Iterable[str]) -> tuple[tuple[str, ...], str]:
    """The roles among `names` the policy defines (sorted, distinct) and their top clearance.

    Unknown names are ignored, so a role removed from the policy stops working at once;
    no known role left is AuthenticationFailed('no roles').
    """
    roles = tuple(sorted({name for name in names if name in org.roles}))
    if not roles:
        raise AuthenticationFailed("no roles")
    order = {level: i for i, level in enumerate(org.clearances)}
    clearance = max((org.roles[r].clearance for r in roles), key=lambda c: order.get(c, -1))
    return roles, clearance
