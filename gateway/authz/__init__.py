"""Authorisation: may this principal take this action on this resource for this purpose?

    authz = Authorizer(policies)
    decision = authz.can_read_features(principal, "fraud-detection", "customers", "profile")
    authz.require(principal, Action.DP_QUERY, "research", DatasetRef("transactions"))  # or raise
    authz.reload(new_policies)      # atomic: build everything, then swap one reference

Allowed only when a held role grants the action on the dataset for a purpose covering the
requested one (`research` covers `research.clinical`, not the reverse), the dataset serves
the purpose, a feature view is approved for it, the clearance covers every column received
unprotected, a purpose-bound credential allows it, and no deny rule matches. Default deny.

The grant/deny part is a Casbin model (`CASBIN_MODEL`) whose lines are generated from the
organisation file (`compile_policy`); Casbin answers every (subject, dataset, purpose,
action) class once, when a policy is loaded, into a dict index (see `gateway.authz.index`),
so a request is a few dict lookups whatever the policy's size, then a bounded LRU cache.
Casbin is never on the request path: pycasbin's plain `Enforcer` is not safe under
FastAPI's thread pool, `FastEnforcer` (keyed on subject and object) silently denies
role-based requests, and `enforce()` scans every line (milliseconds at a thousand lines).
Never call this per data row: row filters and cell rules stay Spark expressions.

Not-found rule: a dataset, feature view or column that does not exist, and a dataset (or
view) no held role may use for any purpose it serves, get the same `NotFound` message.
"""

from gateway.authz.authorizer import DEFAULT_CACHE_SIZE, Authorizer
from gateway.authz.casbin_model import (
    CASBIN_MODEL,
    CasbinPolicy,
    PolicyLine,
    compile_policy,
    principal_subject,
    role_subject,
)
from gateway.authz.types import (
    DATA_ACTIONS,
    NOT_FOUND_RULE,
    ColumnsRef,
    DatasetRef,
    Decision,
    FeatureViewRef,
    Resource,
    VisibleColumn,
    VisibleDataset,
    describe_resource,
    parse_resource,
)

__all__ = [
    "CASBIN_MODEL",
    "DATA_ACTIONS",
    "DEFAULT_CACHE_SIZE",
    "NOT_FOUND_RULE",
    "Authorizer",
    "CasbinPolicy",
    "ColumnsRef",
    "DatasetRef",
    "Decision",
    "FeatureViewRef",
    "PolicyLine",
    "Resource",
    "VisibleColumn",
    "VisibleDataset",
    "compile_policy",
    "describe_resource",
    "parse_resource",
    "principal_subject",
    "role_subject",
]
