"""What authorisation answers with (`Decision`) and what it is asked about (resources)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.organisation import Action
from gateway.policy.protection import ProtectionKind

__all__ = [
    "DATA_ACTIONS",
    "NOT_FOUND_RULE",
    "ColumnsRef",
    "DatasetRef",
    "Decision",
    "FeatureViewRef",
    "Resource",
    "VisibleColumn",
    "VisibleDataset",
    "describe_resource",
    "parse_resource",
]

NOT_FOUND_RULE = "resource.not-found"
"""The `rule` of a decision about a resource the caller may not know of (HTTP 404)."""

DATA_ACTIONS: tuple[Action, ...] = (
    Action.INGEST,
    Action.READ_FEATURES,
    Action.DP_QUERY,
    Action.HE_COMPUTE,
    Action.SYNTHESIZE,
    Action.PUBLISH,
    Action.REIDENTIFY,
)
"""Actions on a dataset's data; `audit_read` and `admin` may also be organisation-wide."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One authorisation decision, as recorded in the audit log.

    `rule` names what decided: the generated Casbin line (`roles.<role>: p, ...` or
    `deny[i]: p, ...`) or the failed check (`purpose.unknown`, `datasets.<d>.purposes`,
    `datasets.<d>.columns.<c>.classification`, `token.purpose`, ...). `reason` is written
    for the caller and never holds data values. `policy_version` is the version that
    decided, so an audit record cannot race a reload.
    """

    allowed: bool
    rule: str
    reason: str
    policy_version: str = ""

    @property
    def hides_resource(self) -> bool:
        """True when the caller is told the resource does not exist (NotFound, HTTP 404)."""
        return self.rule == NOT_FOUND_RULE


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A whole dataset (its governed table)."""

    dataset: str

    def __str__(self) -> str:
        return self.dataset


@dataclass(frozen=True, slots=True)
class FeatureViewRef:
    """A feature view of a dataset: `dataset/view`."""

    dataset: str
    view: str

    def __str__(self) -> str:
        return f"{self.dataset}/{self.view}"


@dataclass(frozen=True, slots=True)
class ColumnsRef:
    """Some columns of a dataset (distinct, in the order given)."""

    dataset: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.columns, str) or not self.columns:
            raise ValueError("ColumnsRef names at least one column (a tuple of names)")
        object.__setattr__(self, "columns", tuple(dict.fromkeys(self.columns)))

    def __str__(self) -> str:
        return f"{self.dataset}[{', '.join(self.columns)}]"


Resource = DatasetRef | FeatureViewRef | ColumnsRef | None
"""What a request is about; None is the organisation as a whole (`audit_read`, `admin`)."""


def parse_resource(text: str) -> DatasetRef | FeatureViewRef:
    """`dataset` or `dataset/view` as a typed resource."""
    dataset, sep, view = text.partition("/")
    if not dataset or (sep and (not view or "/" in view)):
        raise ValueError(f"a resource is 'dataset' or 'dataset/view', not {text!r}")
    return FeatureViewRef(dataset, view) if sep else DatasetRef(dataset)


def describe_resource(resource: Resource) -> str:
    """The resource as a reason names it."""
    if resource is None:
        return "the organisation"
    if isinstance(resource, FeatureViewRef):
        return f"feature view '{resource}'"
    if isinstance(resource, ColumnsRef):
        return f"columns {', '.join(resource.columns)} of dataset '{resource.dataset}'"
    return f"dataset '{resource.dataset}'"


@dataclass(frozen=True, slots=True)
class VisibleColumn:
    """A column as a caller would receive it for one purpose."""

    name: str
    type: str
    classification: str
    protection: str
    kind: ProtectionKind


@dataclass(frozen=True, slots=True)
class VisibleDataset:
    """A dataset a caller may use for a purpose: allowed actions, views and columns."""

    dataset: str
    description: str | None
    actions: tuple[Action, ...]
    views: tuple[str, ...]
    columns: tuple[VisibleColumn, ...]
