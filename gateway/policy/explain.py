"""What each column of a dataset becomes for one purpose: the steward's `policy explain` view."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import NotFound, PolicyError, PolicyIssue
from gateway.policy.loader import PolicySet
from gateway.policy.protection import Protection, ProtectionKind

__all__ = ["ColumnTreatment", "DatasetTreatment", "explain"]


@dataclass(frozen=True)
class ColumnTreatment:
    """One column for one purpose: its protection, where it goes, and the cell rules on it."""

    column: str
    data_type: str
    classification: str
    protection: Protection
    destination: str
    cell_rules: tuple[str, ...]


@dataclass(frozen=True)
class DatasetTreatment:
    """A dataset for one purpose: column treatments, row filters and the policy version."""

    dataset: str
    purpose: str
    policy_version: str
    columns: tuple[ColumnTreatment, ...]
    row_filters: tuple[str, ...]


_DESTINATION = {
    ProtectionKind.KEEP: "governed table",
    ProtectionKind.MASK: "governed table",
    ProtectionKind.DROP: "nowhere",
    ProtectionKind.DP_ONLY: "DP zone only",
    ProtectionKind.ENCRYPT: "encrypted table",
}


def explain(policies: PolicySet, dataset: str, purpose: str) -> DatasetTreatment:
    """Resolve every column of `dataset` for `purpose`; NotFound when the purpose is not allowed."""
    ds = policies.dataset(dataset)
    if purpose not in policies.organisation.purposes:
        raise NotFound(f"no purpose named '{purpose}'")
    if not ds.allows(purpose):
        raise NotFound(
            f"dataset '{dataset}' is not available for purpose '{purpose}' "
            f"(its purposes: {', '.join(ds.purposes)})"
        )
    rules = ds.cell_rules_for(purpose)
    columns = []
    for name, spec in ds.columns.items():
        protection = ds.protection(name, purpose, policies.lowest_clearance)
        if protection is None:  # fail closed: the loader rejects this; never guess a default
            raise PolicyError(
                [
                    PolicyIssue(
                        policies.files[0],
                        1,
                        1,
                        f"columns.{name}",
                        f"no protection decided for purpose '{purpose}'",
                    )
                ]
            )
        applied = (
            tuple(
                f"{rule.name or f'rule {i + 1}'}: {rule.protect} when {rule.when}"
                for i, rule in enumerate(ds.cell_rules)
                if rule in rules and name in rule.columns
            )
            if protection.in_governed_table
            else ()
        )
        columns.append(
            ColumnTreatment(
                name,
                spec.type.value,
                spec.classification,
                protection,
                _DESTINATION[protection.kind],
                applied,
            )
        )
    return DatasetTreatment(
        dataset, purpose, policies.version, tuple(columns), tuple(ds.row_filter_texts(purpose))
    )
