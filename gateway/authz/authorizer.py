"""The `Authorizer` facade: intent-named checks over the precompiled index, atomic reload."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

from gateway.authz.casbin_model import CasbinPolicy, principal_subject
from gateway.authz.index import PolicyIndex
from gateway.authz.types import (
    ColumnsRef,
    DatasetRef,
    Decision,
    FeatureViewRef,
    Resource,
    VisibleDataset,
)
from gateway.errors import AccessDenied, NotFound
from gateway.identity.principal import Principal
from gateway.policy.loader import PolicySet
from gateway.policy.organisation import Action

__all__ = ["DEFAULT_CACHE_SIZE", "Authorizer"]

DEFAULT_CACHE_SIZE = 65_536
"""Decisions kept per policy version (LRU); a key is roles, clearance, purpose, resource, action."""


def _data(dataset: str, columns: Sequence[str] | None) -> DatasetRef | ColumnsRef:
    return DatasetRef(dataset) if columns is None else ColumnsRef(dataset, tuple(columns))


class Authorizer:
    """Purpose-based authorisation decisions for authenticated principals; thread safe.

    Every method reads the policy index in force once, so a request sees the old or the
    new policy, never a mix; `reload` swaps that single reference after building the new
    index in full. Decisions are cached per index (a reload starts an empty cache).
    """

    def __init__(self, policies: PolicySet, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._cache_size = cache_size
        self._reload_lock = threading.Lock()
        self._index = PolicyIndex(policies, cache_size)

    @property
    def policies(self) -> PolicySet:
        """The policy set in force."""
        return self._index.policies

    @property
    def version(self) -> str:
        """The version of the policy set in force."""
        return self._index.version

    @property
    def casbin(self) -> CasbinPolicy:
        """The generated Casbin model and lines of the policy in force."""
        return self._index.casbin

    def reload(self, policies: PolicySet) -> None:
        """Build the index of `policies`, then swap it in; on error the old one stays in force."""
        with self._reload_lock:  # concurrent reloads build one at a time; the last one wins
            index = PolicyIndex(policies, self._cache_size)
            self._index = index

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of the decision cache of the policy in force."""
        return self._index.decide.cache_info()

    def clear_cache(self) -> None:
        """Forget cached decisions (the index stays): for benchmarks and tests."""
        self._index.decide.cache_clear()
        self._index.visible.cache_clear()

    def stats(self) -> dict[str, int]:
        """Sizes of the policy in force: Casbin lines, index entries, cached decisions."""
        index = self._index
        return {
            "lines": len(index.casbin.lines),
            "deny_lines": sum(line.eft == "deny" for line in index.casbin.lines),
            "grant_entries": len(index.allow_entries),
            "deny_entries": len(index.deny_entries),
            "cached_decisions": index.decide.cache_info().currsize,
        }

    # -- the one entry point ---------------------------------------------------------------

    def check(
        self, principal: Principal, action: Action, purpose: str, resource: Resource
    ) -> Decision:
        """May `principal` take `action` on `resource` for `purpose`? Default deny.

        Checks, in order (the first that fails names the decision): the resource suits the
        action; the resource is knowable (else NotFound semantics); the purpose is declared;
        the credential's bound purpose covers it; no deny rule matches a held role or the
        subject; a held role grants the action on the dataset for the purpose; the dataset
        serves the purpose; a feature view is approved for it (or for a parent purpose);
        the credential's bound feature views include it; no requested column is dropped;
        the clearance covers every column received unprotected. Never call this per row:
        row policies are Spark expressions applied by the jobs.
        """
        index = self._index  # one snapshot for the whole decision
        subject = (
            principal.subject
            if principal_subject(principal.subject) in index.principal_tokens
            else None  # the subject is part of the cache key only when a deny rule names it
        )
        return index.decide(
            principal.roles,
            subject,
            principal.clearance,
            principal.bound_purpose,
            principal.bound_features,
            action if isinstance(action, Action) else Action(action),
            purpose,
            resource,
        )

    def require(
        self, principal: Principal, action: Action, purpose: str, resource: Resource
    ) -> Decision:
        """`check`, raising NotFound (HTTP 404) or AccessDenied (HTTP 403) unless allowed.

        NotFound when the dataset, view or column does not exist, or when no role of the
        caller may use the dataset (or, for a view, read or publish it) for any purpose it
        serves, whatever the action, ignoring deny rules, clearance and token bounds: the
        message is the same as for a missing one, so callers cannot probe for names.
        Everything else refused is AccessDenied with the decision's reason.
        """
        decision = self.check(principal, action, purpose, resource)
        if decision.allowed:
            return decision
        if decision.hides_resource:
            raise NotFound(decision.reason)
        raise AccessDenied(decision.reason)

    # -- intent-named checks ---------------------------------------------------------------

    def can_read_features(
        self, principal: Principal, purpose: str, dataset: str, view: str
    ) -> Decision:
        """May `principal` read feature view `dataset/view` for `purpose`?"""
        return self.check(principal, Action.READ_FEATURES, purpose, FeatureViewRef(dataset, view))

    def can_read_columns(
        self, principal: Principal, purpose: str, dataset: str, columns: Sequence[str]
    ) -> Decision:
        """May `principal` read these columns of the governed table for `purpose`?"""
        return self.check(
            principal, Action.READ_FEATURES, purpose, ColumnsRef(dataset, tuple(columns))
        )

    def can_query_dp(
        self, principal: Principal, purpose: str, dataset: str, columns: Sequence[str] | None = None
    ) -> Decision:
        """May `principal` run differentially private queries on `dataset` (these columns)?"""
        return self.check(principal, Action.DP_QUERY, purpose, _data(dataset, columns))

    def can_compute_he(
        self, principal: Principal, purpose: str, dataset: str, columns: Sequence[str] | None = None
    ) -> Decision:
        """May `principal` compute on the encrypted columns of `dataset`?"""
        return self.check(principal, Action.HE_COMPUTE, purpose, _data(dataset, columns))

    def can_synthesize(self, principal: Principal, purpose: str, dataset: str) -> Decision:
        """May `principal` receive a synthetic release of `dataset`?"""
        return self.check(principal, Action.SYNTHESIZE, purpose, DatasetRef(dataset))

    def can_ingest(self, principal: Principal, purpose: str, dataset: str) -> Decision:
        """May `principal` ingest raw data into `dataset` (building its tables for `purpose`)?"""
        return self.check(principal, Action.INGEST, purpose, DatasetRef(dataset))

    def can_publish(self, principal: Principal, purpose: str, dataset: str, view: str) -> Decision:
        """May `principal` publish feature view `dataset/view` to the feature store?"""
        return self.check(principal, Action.PUBLISH, purpose, FeatureViewRef(dataset, view))

    def can_reidentify(
        self, principal: Principal, purpose: str, dataset: str, columns: Sequence[str]
    ) -> Decision:
        """May `principal` restore raw values of these (tokenized) columns?"""
        return self.check(
            principal, Action.REIDENTIFY, purpose, ColumnsRef(dataset, tuple(columns))
        )

    def can_read_audit(
        self, principal: Principal, purpose: str, dataset: str | None = None
    ) -> Decision:
        """May `principal` read the audit log (of one dataset, or organisation-wide)?"""
        resource = None if dataset is None else DatasetRef(dataset)
        return self.check(principal, Action.AUDIT_READ, purpose, resource)

    # -- listings --------------------------------------------------------------------------

    def visible_datasets(self, principal: Principal, purpose: str) -> list[VisibleDataset]:
        """Datasets `principal` may use for `purpose` with some data action (GET /v1/datasets).

        Each lists the allowed actions and feature views and every column not dropped for
        the purpose, with its protection. An unknown purpose lists nothing.
        """
        index = self._index
        subject = (
            principal.subject
            if principal_subject(principal.subject) in index.principal_tokens
            else None
        )
        return list(
            index.visible(
                principal.roles,
                subject,
                principal.clearance,
                principal.bound_purpose,
                principal.bound_features,
                purpose,
            )
        )
