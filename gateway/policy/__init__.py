"""The steward policy language: YAML files validated into immutable models, versioned by hash."""

from gateway.policy.dataset import (
    Budget,
    CellRule,
    ColumnSpec,
    DatasetPolicy,
    FeatureSet,
    HeSettings,
    SyntheticRules,
)
from gateway.policy.explain import ColumnTreatment, explain
from gateway.policy.loader import PolicySet, load_policy_set
from gateway.policy.organisation import Action, OrganisationPolicy, Role, purpose_covers
from gateway.policy.protection import Protection, ProtectionKind

__all__ = [
    "Action",
    "Budget",
    "CellRule",
    "ColumnSpec",
    "ColumnTreatment",
    "DatasetPolicy",
    "FeatureSet",
    "HeSettings",
    "OrganisationPolicy",
    "PolicySet",
    "Protection",
    "ProtectionKind",
    "Role",
    "SyntheticRules",
    "explain",
    "load_policy_set",
    "purpose_covers",
]
