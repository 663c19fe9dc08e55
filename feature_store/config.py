"""Small frozen models describing what to publish to Feast and where Feast keeps its state.

These know nothing of the gateway: `gateway.features` converts the policy into them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MANAGED_TAG",
    "FeatureSpec",
    "PermissionSpec",
    "Publication",
    "StoreConfig",
    "ValueKind",
    "ViewSpec",
    "feast_name",
]

MANAGED_TAG = "managed_by"
"""Every object this package creates carries `managed_by=gateway`."""

ValueKind = Literal["string", "integer", "long", "double", "boolean", "date", "timestamp"]

_NAME = re.compile(r"[^A-Za-z0-9_]")


def feast_name(*parts: str) -> str:
    """A Feast object name: parts joined by `__`, dashes and dots turned into underscores."""
    return "__".join(_NAME.sub("_", part) for part in parts)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One feature: a column of the governed table, its type, classification and protection."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: ValueKind
    classification: str
    protection: str


class ViewSpec(_Frozen):
    """One feature view: a feature set of a dataset as governed for one purpose."""

    dataset: str
    view: str
    purpose: str
    entity: str
    entity_kind: ValueKind = "string"
    entity_classification: str = ""
    entity_protection: str = ""
    source_path: str
    timestamp_field: str
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    ttl_seconds: int = Field(gt=0)
    owner: str | None = None
    description: str | None = None
    policy_version: str
    dataset_version: str = ""

    @property
    def name(self) -> str:
        """The Feast feature view name: `<view>__<purpose>`."""
        return feast_name(self.view, self.purpose)

    @property
    def source_name(self) -> str:
        """The Feast data source name: `<dataset>__<purpose>` (one governed table)."""
        return feast_name(self.dataset, self.purpose)

    @property
    def entity_name(self) -> str:
        """The Feast entity name: `<dataset>__<entity>`."""
        return feast_name(self.dataset, self.entity)

    def protection_json(self) -> str:
        """Column -> protection as compact, sorted JSON (the view's `protection` tag)."""
        return json.dumps(
            {f.name: f.protection for f in self.features}, sort_keys=True, separators=(",", ":")
        )

    def classification_tag(self) -> str:
        """The distinct classifications of the view's features, sorted and comma-joined."""
        return ",".join(sorted({f.classification for f in self.features}))


class PermissionSpec(_Frozen):
    """A Feast permission (second layer only): roles that may read the given views."""

    name: str
    purpose: str
    views: tuple[str, ...]
    roles: tuple[str, ...]


class Publication(_Frozen):
    """Everything to publish: the views, and the Feast permissions mirroring the policy."""

    project: str = "gateway"
    policy_version: str
    views: tuple[ViewSpec, ...] = ()
    permissions: tuple[PermissionSpec, ...] = ()

    @field_validator("views")
    @classmethod
    def _unique(cls, views: tuple[ViewSpec, ...]) -> tuple[ViewSpec, ...]:
        names = [v.name for v in views]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature view names collide: {', '.join(dupes)}")
        return views

    def purposes(self) -> list[str]:
        """Purposes with at least one view, sorted."""
        return sorted({v.purpose for v in self.views})


class StoreConfig(_Frozen):
    """Where Feast keeps its registry and online store; defaults need no server.

    `registry_url` None: a registry file `<root>/registry.db`; a postgresql:// URL: the SQL
    registry. `online_store` 'sqlite' (`<root>/online.db`) or a redis:// URL.
    """

    root: Path
    project: str = Field(default="gateway", pattern=r"^[A-Za-z0-9_]+$")
    registry_url: str | None = None
    online_store: str = "sqlite"
    registry_cache_seconds: int = Field(default=5, ge=0)
    write_batch_rows: int = Field(default=50_000, gt=0)

    @field_validator("online_store")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("online_store must be 'sqlite' or a redis:// URL")
        return value

    @field_validator("registry_url")
    @classmethod
    def _sql(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql", "sqlite", "mysql")):
            raise ValueError("registry_url must be a SQLAlchemy URL (postgresql://...)")
        return value

    @property
    def registry(self) -> dict[str, object]:
        """The Feast `registry` section."""
        if self.registry_url is None:
            return {
                "registry_type": "file",
                "path": str(self.root / "registry.db"),
                "cache_ttl_seconds": self.registry_cache_seconds,
            }
        url = self.registry_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return {
            "registry_type": "sql",
            "path": url,
            "cache_ttl_seconds": self.registry_cache_seconds,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }

    @property
    def online(self) -> dict[str, object]:
        """The Feast `online_store` section."""
        if self.online_store == "sqlite":
            return {"type": "sqlite", "path": str(self.root / "online.db")}
        parts = urlsplit(self.online_store)
        host = parts.hostname or "localhost"
        conn = [f"{host}:{parts.port or 6379}"]
        db = parts.path.strip("/")
        if db:
            conn.append(f"db={int(db)}")
        if parts.password:
            conn.append(f"password={unquote(parts.password)}")
        if parts.scheme == "rediss":
            conn.append("ssl=true")
        return {"type": "redis", "connection_string": ",".join(conn)}

    def yaml_text(self) -> str:
        """A `feature_store.yaml` for the same store (for `feast serve` and the Feast CLI)."""
        doc = {
            "project": self.project,
            "provider": "local",
            "registry": self.registry,
            "online_store": self.online,
            "offline_store": {"type": "dask"},
            "entity_key_serialization_version": 3,
        }
        return json.dumps(doc, indent=2) + "\n"  # JSON is YAML
