"""Governed features on Feast: frozen publication models here; Feast is imported lazily.

    from feature_store import StoreConfig, GovernedFeatureStore
    store = GovernedFeatureStore(StoreConfig(root=home / "feast"))
    store.apply(publication); store.materialize(); store.online([...], {...})

This package never imports `gateway`; `gateway.features` converts the policy into a
`Publication` and enforces approval before anything reaches Feast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feature_store.config import (
    MANAGED_TAG,
    FeatureSpec,
    PermissionSpec,
    Publication,
    StoreConfig,
    ValueKind,
    ViewSpec,
    feast_name,
)

if TYPE_CHECKING:
    from feature_store.store import (
        FeastObjects,
        GovernedFeatureStore,
        MaterializeReport,
        PlanReport,
        build_objects,
    )

__all__ = [
    "MANAGED_TAG",
    "FeastObjects",
    "FeatureSpec",
    "GovernedFeatureStore",
    "MaterializeReport",
    "PermissionSpec",
    "PlanReport",
    "Publication",
    "StoreConfig",
    "ValueKind",
    "ViewSpec",
    "build_objects",
    "feast_name",
]

_LAZY = {"FeastObjects", "GovernedFeatureStore", "MaterializeReport", "PlanReport", "build_objects"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from feature_store import store

        return getattr(store, name)
    raise AttributeError(f"module 'feature_store' has no attribute {name!r}")
