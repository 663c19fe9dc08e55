"""Reverse reversible protections (AES-SIV, FF3-1) for a data steward, and audit every use.

Only a principal whose role grants `reidentify` on the dataset for the purpose may do it;
the audit record names the columns and how many values were restored, never the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.audit import AuditEvent
from gateway.errors import AccessDenied, NotFound, ValidationFailed
from gateway.identity import Principal
from gateway.policy.protection import ProtectionKind
from gateway.secrets import SecretStore
from gateway.services import Services

__all__ = ["REVERSIBLE", "local_principal", "reidentify"]

REVERSIBLE = ("encrypt_deterministic", "fpe")


@dataclass(frozen=True)
class Restored:
    """One protected value and its plaintext."""

    protected: str
    value: str


def local_principal(services: Services, subject: str) -> Principal:
    """The policy principal `subject` as a local (command-line) caller."""
    org = services.policies.organisation
    spec = org.principals.get(subject)
    if spec is None:
        raise NotFound(f"no principal named '{subject}' in the organisation policy")
    clearance = max((org.roles[r].clearance for r in spec.roles), key=org.clearance_rank)
    return Principal(
        subject=subject,
        roles=spec.roles,
        clearance=clearance,
        auth_method="local",
        credential_id=f"local:{subject}",
        expires_at=None,
    )


def reidentify(
    services: Services,
    principal: Principal,
    dataset: str,
    purpose: str,
    column: str,
    values: Sequence[str],
    *,
    request_id: str = "",
) -> list[Restored]:
    """Decrypt `values` of `column` as protected for `purpose`; audited, steward roles only."""
    from masking.catalog import REGISTRY
    from masking.strategies.crypto import decrypt_deterministic, fpe_decrypt

    policies = services.policies
    ds = policies.dataset(dataset)
    if column not in ds.columns:
        raise NotFound(f"dataset '{dataset}' has no column '{column}'")
    decision = services.authorizer.can_reidentify(principal, purpose, dataset, [column])
    services.decide(
        principal,
        decision,
        action="reidentify",
        purpose=purpose,
        resource=f"dataset:{dataset}/column:{column}",
        request_id=request_id,
        released={"values": len(values)},
    )
    if not decision.allowed:
        raise AccessDenied(decision.reason)
    protection = ds.protection(column, purpose, policies.lowest_clearance)
    if (
        protection is None
        or protection.kind is not ProtectionKind.MASK
        or protection.strategy not in REVERSIBLE
    ):
        raise ValidationFailed(
            f"column '{column}' is not reversibly protected for '{purpose}' "
            f"(it is {protection}); only {', '.join(REVERSIBLE)} can be reversed"
        )
    strategy = REGISTRY.get(str(protection.strategy))
    params = strategy.parse(protection.params)
    (reference,) = strategy.key_references(params)
    key = SecretStore(services.settings).key(reference)
    services.record(
        AuditEvent(
            kind="key_use",
            subject=principal.subject,
            roles=principal.roles,
            action="reidentify",
            purpose=purpose,
            resource=f"dataset:{dataset}/column:{column}",
            decision="allow",
            rule=decision.rule,
            request_id=request_id,
            policy_version=policies.version,
            released={"values": len(values), "key_id": key.key_id},
        )
    )
    out = []
    for value in values:
        if protection.strategy == "encrypt_deterministic":
            plain = decrypt_deterministic(value, key, column=column)
        else:
            plain = fpe_decrypt(value, key, alphabet=params.alphabet, tweak=params.tweak)  # type: ignore[attr-defined]
        out.append(Restored(value, plain))
    return out
