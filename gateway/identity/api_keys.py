"""API keys for the policy's principals: `gw_<key_id>_<secret>`, only a hash stored.

Both parts are lowercase hex (64-bit id, 256-bit secret), so the key splits unambiguously.

The secret is 256 random bits, so a plain SHA-256 (domain-separated and bound to the key
id) cannot be reversed or brute-forced; a server-side pepper would add a second secret
to manage and lose without adding strength. A key names a principal declared in the
organisation policy and a subset of that principal's roles; at authentication time the
Authenticator intersects them with the policy in force, so a role or principal removed
from the policy stops working without touching the keys.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.types import TypeDecorator

from gateway.db import read_only
from gateway.errors import AuthenticationFailed, NotFound, ValidationFailed
from gateway.policy.loader import PolicySet
from gateway.policy.locate import did_you_mean

__all__ = ["ApiKeyInfo", "ApiKeyStore", "NewApiKey", "looks_like_api_key"]

PREFIX = "gw_"
_KEY = re.compile(r"gw_([0-9a-f]{16})_([0-9a-f]{64})")
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DOMAIN = b"gateway-api-key-v1\x00"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def looks_like_api_key(credential: str) -> bool:
    """True when `credential` is meant as an API key (starts with `gw_`)."""
    return credential.startswith(PREFIX)


class NewApiKey(NamedTuple):
    """A key just created: `secret` is the full credential, shown once and never stored."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"NewApiKey(key_id={self.key_id!r}, secret=<hidden>)"


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What the store knows of a key, without its hash."""

    key_id: str
    subject: str
    roles: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        """'revoked', 'expired' or 'active' at `now`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class _UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _digest(key_id: str, secret: str) -> str:
    return hashlib.sha256(_DOMAIN + key_id.encode() + b"\x00" + secret.encode()).hexdigest()


class ApiKeyStore:
    """API keys in one table of the gateway database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        *,
        table: str = "api_keys",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"invalid table name {table!r}")
        self._engine = engine
        self._clock = clock
        metadata = MetaData()
        self._table = Table(
            table,
            metadata,
            Column("key_id", String(16), primary_key=True),
            Column("subject", String(200), nullable=False),
            Column("roles", JSON, nullable=False),
            Column("hash", String(64), nullable=False),
            Column("created_at", _UtcDateTime, nullable=False),
            Column("expires_at", _UtcDateTime, nullable=True),
            Column("revoked_at", _UtcDateTime, nullable=True),
            Index(f"ix_{table}_subject", "subject"),
        )
        metadata.create_all(engine, checkfirst=True)

    @property
    def table(self) -> Table:
        """The SQLAlchemy table (for migrations and tests)."""
        return self._table

    def now(self) -> datetime:
        """The store's clock (UTC)."""
        return self._clock()

    def create(
        self,
        subject: str,
        roles: Sequence[str],
        expires_in: timedelta | None = None,
        *,
        policies: PolicySet,
    ) -> NewApiKey:
        """A new key for principal `subject` with `roles` (a subset of the principal's)."""
        org = policies.organisation
        principal = org.principals.get(subject)
        if principal is None:
            raise ValidationFailed(
                f"'{subject}' is not a principal of the organisation policy"
                f"{did_you_mean(subject, org.principals)}"
            )
        if isinstance(roles, str) or not roles:
            raise ValidationFailed("an API key needs at least one role")
        for role in roles:
            if role not in org.roles:
                raise ValidationFailed(f"unknown role '{role}'{did_you_mean(role, org.roles)}")
            if role not in principal.roles:
                raise ValidationFailed(f"principal '{subject}' does not hold role '{role}'")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationFailed("expires_in must be positive")
        key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                self._table.insert().values(
                    key_id=key_id,
                    subject=subject,
                    roles=sorted(set(roles)),
                    hash=_digest(key_id, secret),
                    created_at=now,
                    expires_at=None if expires_in is None else now + expires_in,
                    revoked_at=None,
                )
            )
        return NewApiKey(key_id, f"{PREFIX}{key_id}_{secret}")

    def authenticate(self, presented: str) -> ApiKeyInfo:
        """The key behind a presented credential; AuthenticationFailed when it is not valid."""
        match = _KEY.fullmatch(presented)
        if match is None:
            raise AuthenticationFailed("malformed api key")
        key_id, secret = match.groups()
        with read_only(self._engine) as conn:
            row = (
                conn.execute(select(self._table).where(self._table.c.key_id == key_id))
                .mappings()
                .first()
            )
        stored = row["hash"] if row is not None else _digest("", "")
        if not hmac.compare_digest(_digest(key_id, secret), str(stored)) or row is None:
            raise AuthenticationFailed("invalid api key")
        info = _info(row)
        self.check_active(info)
        return info

    def check_active(self, info: ApiKeyInfo) -> None:
        """AuthenticationFailed('revoked key' | 'expired key') unless `info` is usable now."""
        status = info.status(self._clock())
        if status != "active":
            raise AuthenticationFailed(f"{status} key")

    def get(self, key_id: str) -> ApiKeyInfo | None:
        """The key `key_id`, or None."""
        with read_only(self._engine) as conn:
            row = (
                conn.execute(select(self._table).where(self._table.c.key_id == key_id))
                .mappings()
                .first()
            )
        return None if row is None else _info(row)

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once (idempotent: a revoked key keeps its first revocation time)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(self._table)
                .where(self._table.c.key_id == key_id, self._table.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            row = (
                conn.execute(select(self._table).where(self._table.c.key_id == key_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no API key with id '{key_id}'")
        return _info(row)

    def list(self, subject: str | None = None) -> builtins.list[ApiKeyInfo]:
        """Every key (of `subject` when given), oldest first; hashes are never returned."""
        query = select(self._table).order_by(self._table.c.created_at, self._table.c.key_id)
        if subject is not None:
            query = query.where(self._table.c.subject == subject)
        with read_only(self._engine) as conn:
            return [_info(row) for row in conn.execute(query).mappings()]


def _info(row: RowMapping) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row["key_id"],
        subject=row["subject"],
        roles=tuple(row["roles"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
