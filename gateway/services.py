"""The gateway's long-lived services, built once from settings and shared by API and CLI.

`Services.reload_policies()` swaps the policy set atomically for every service: a bad
policy on reload raises and leaves the old set in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.acknowledgements import AcknowledgementStore
from gateway.audit import AuditEvent, AuditLog
from gateway.db import create_database_engine
from gateway.errors import AccessDenied, GatewayError, StorageError
from gateway.identity import ApiKeyStore, Authenticator, Principal
from gateway.policy.loader import PolicySet, load_policy_set
from gateway.settings import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from gateway.authz import Authorizer, Decision

Released = int | float | bool | str | Sequence[str]

__all__ = ["AuditUnavailable", "PurposeNotAcknowledged", "Services", "build_services"]

log = logging.getLogger(__name__)


class AuditUnavailable(GatewayError):
    """The audit record could not be written, so the request is refused (HTTP 503)."""

    http_status = 503
    code = "audit-unavailable"


class PurposeNotAcknowledged(AccessDenied):
    """The caller has not acknowledged the current statement of the purpose (HTTP 403)."""

    code = "purpose-not-acknowledged"


@dataclass
class Services:
    """Everything a request may need; one instance per process."""

    settings: Settings
    engine: sa.Engine
    audit: AuditLog
    api_keys: ApiKeyStore
    acknowledgements: AcknowledgementStore
    authenticator: Authenticator
    authorizer: Authorizer
    _policies: PolicySet
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Acknowledgements are append-only and keyed by statement version, so a positive answer
    # never goes stale; negative answers are always asked of the database.
    _acknowledged: set[tuple[str, str, str]] = field(default_factory=set)
    decision_listeners: list[Callable[[str, bool], None]] = field(default_factory=list)

    @property
    def policies(self) -> PolicySet:
        """The policy set in force."""
        return self._policies

    def reload_policies(self) -> PolicySet:
        """Load the policy files again and swap them in everywhere, or keep the old set."""
        new = load_policy_set(self.settings.policy_paths)
        with self._lock:
            authenticator = self.authenticator.with_policies(new)
            self.authorizer.reload(new)
            self.authenticator = authenticator
            self._policies = new
        log.info("policy reloaded: version %s", new.short_version)
        return new

    def record(self, event: AuditEvent) -> None:
        """Append an audit event; AuditUnavailable when it cannot be written (fail closed)."""
        try:
            self.audit.append(event)
        except StorageError:
            log.error("audit append failed; refusing the request")
            raise AuditUnavailable(
                "the audit log is unavailable; the request was refused"
            ) from None

    def decide(
        self,
        principal: Principal,
        decision: Decision,
        *,
        action: str,
        purpose: str,
        resource: str,
        request_id: str,
        released: Mapping[str, Released] | None = None,
    ) -> Decision:
        """Audit an authorisation decision (allowed or denied), tell listeners, and return it."""
        for listener in self.decision_listeners:
            listener(action, decision.allowed)
        self.record(
            AuditEvent(
                kind="decision",
                subject=principal.subject,
                roles=principal.roles,
                action=action,
                purpose=purpose,
                resource=resource,
                decision="allow" if decision.allowed else "deny",
                rule=decision.rule,
                reason=decision.reason,
                request_id=request_id,
                policy_version=decision.policy_version or self._policies.version,
                released=released or {},
            )
        )
        return decision

    def require_acknowledged(self, principal: Principal, purpose: str) -> None:
        """Refuse a purpose whose current statement the principal has not acknowledged."""
        statement = self._policies.organisation.purposes.get(purpose)
        if statement is None:
            return  # an unknown purpose is refused by authorisation
        key = (principal.subject, purpose, statement.statement_version)
        if key in self._acknowledged:
            return
        if self.acknowledgements.get(*key) is None:
            raise PurposeNotAcknowledged(
                f"acknowledge the statement of purpose '{purpose}' first "
                f"(POST /v1/purposes/{purpose}/acknowledge)"
            )
        self._acknowledged.add(key)

    def close(self) -> None:
        """Stop the audit writer and release database connections."""
        self.audit.close()
        self.engine.dispose()


def build_services(settings: Settings, policies: PolicySet | None = None) -> Services:
    """Create the database engine, stores, authenticator and authoriser for `settings`."""
    from gateway.authz import Authorizer

    policies = policies if policies is not None else load_policy_set(settings.policy_paths)
    engine = create_database_engine(settings.database)
    api_keys = ApiKeyStore(engine)
    return Services(
        settings=settings,
        engine=engine,
        audit=AuditLog(engine),
        api_keys=api_keys,
        acknowledgements=AcknowledgementStore(engine),
        authenticator=Authenticator(policies, settings, api_keys),
        authorizer=Authorizer(policies),
        _policies=policies,
    )
