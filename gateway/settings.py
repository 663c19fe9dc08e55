"""Runtime settings from `GATEWAY_*` environment variables, validated and immutable.

Embedded defaults (local Spark, Delta on disk under `./.gateway`, SQLite, a SQLite online
store) need no server. Outside a dev or test environment, defaults that are only safe on a
laptop are refused: production must name its database, secrets and signing keys.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import ConfigurationError

__all__ = ["Environment", "Settings", "load_settings"]


class Environment(StrEnum):
    """Where the gateway runs; only dev and test allow embedded, generated secrets."""

    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class Settings(BaseSettings):
    """Every runtime knob, read once from the environment (prefix `GATEWAY_`)."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", frozen=True, extra="forbid", env_nested_delimiter="__"
    )

    environment: Environment = Environment.DEV
    home: Path = Field(
        default=Path(".gateway"), description="Embedded state: SQLite, keys, Feast repo."
    )
    lake_root: Path | None = Field(
        default=None, description="Delta lake root; default <home>/lake."
    )
    landing_root: Path | None = Field(
        default=None, description="Where raw sources land; default <home>/landing."
    )
    database_url: str | None = Field(
        default=None,
        description="Audit log and budget ledger; default sqlite:///<home>/gateway.db.",
    )
    online_store: str = Field(
        default="sqlite", description="Feast online store: 'sqlite' or a redis:// URL."
    )
    registry_url: str | None = Field(
        default=None, description="Feast registry: default a file; a postgresql:// URL for SQL."
    )
    policy_paths: tuple[Path, ...] = Field(
        default=(Path("examples/policies"),), description="Policy files or folders to load."
    )
    spark_master: str = Field(default="local[*]", description="Any Spark master URL.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark conf.")
    spark_driver_memory: str = "2g"
    secrets_dir: Path | None = Field(
        default=None,
        description="Folder of secret files, one per reference; default <home>/secrets.",
    )
    lineage: str = Field(
        default="file", description="OpenLineage transport: 'file' (<home>/lineage) or 'console'."
    )
    storage_engine: str = Field(
        default="auto", description="'auto', 'delta-spark' or 'delta-rs' for Delta writes."
    )

    @field_validator("storage_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in {"auto", "delta-spark", "delta-rs"}:
            raise ValueError("must be 'auto', 'delta-spark' or 'delta-rs'")
        return value

    @field_validator("lineage")
    @classmethod
    def _known_lineage(cls, value: str) -> str:
        if value not in {"file", "console"}:
            raise ValueError("must be 'file' or 'console'")
        return value

    @field_validator("online_store")
    @classmethod
    def _known_online_store(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be 'sqlite' or a redis:// URL")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.environment is Environment.PROD:
            missing = [
                name
                for name, value in (
                    ("GATEWAY_DATABASE_URL", self.database_url),
                    ("GATEWAY_SECRETS_DIR", self.secrets_dir),
                    ("GATEWAY_LAKE_ROOT", self.lake_root),
                )
                if value is None
            ]
            if missing:
                raise ValueError("production refuses embedded defaults; set " + ", ".join(missing))
        return self

    @property
    def lake(self) -> Path:
        """The Delta lake root."""
        return self.lake_root if self.lake_root is not None else self.home / "lake"

    @property
    def landing(self) -> Path:
        """The landing zone that relative source paths of dataset policies resolve against."""
        return self.landing_root if self.landing_root is not None else self.home / "landing"

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the audit log and budget ledger."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.home / 'gateway.db').resolve()}"

    @property
    def secrets(self) -> Path:
        """The folder holding secret files (keys referenced by name in policies)."""
        return self.secrets_dir if self.secrets_dir is not None else self.home / "secrets"

    @property
    def is_production(self) -> bool:
        """True when development conveniences (generated keys, HS256 tokens) are refused."""
        return self.environment is Environment.PROD


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; a bad value raises ConfigurationError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"GATEWAY_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
