"""A SQLite online store that writes a batch with one `executemany` (Feast's writes row by row).

Reads, table layout and keys are Feast's own `SqliteOnlineStore`, so `feast serve` and any
Feast client on the same file read what this wrote. Registered by class path in the Feast
`online_store.type` (Feast's supported extension point for online stores).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.utils import to_naive_utc

__all__ = ["BulkSqliteOnlineStore", "BulkSqliteOnlineStoreConfig"]

CLASS_PATH = "feature_store.online.BulkSqliteOnlineStore"


class BulkSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast's SQLite config, selected by this module's class path."""

    type: str = CLASS_PATH  # type: ignore[assignment]


class BulkSqliteOnlineStore(SqliteOnlineStore):
    """SQLite online store with batched upserts; plain (non-vector) feature views only."""

    def _get_conn(self, config: Any) -> Any:
        if self._conn is None:
            conn = super()._get_conn(config)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache for bulk upserts
        return self._conn

    def online_write_batch(
        self,
        config: Any,
        table: Any,
        data: list[tuple[Any, dict[str, Any], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Upsert every (entity, feature) value of `data` in one transaction."""
        if getattr(config.online_store, "vector_enabled", False) or getattr(
            config.online_store, "enable_openai_compatible_store", False
        ):
            super().online_write_batch(config, table, data, progress)
            return
        conn = self._get_conn(config)
        name = _table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        sql = (
            f"INSERT INTO {_quote_id(name)} "
            "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
            "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
            "value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts"
        )
        version = config.entity_key_serialization_version
        rows: list[tuple[Any, ...]] = []
        for entity_key, values, timestamp, created in data:
            key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
            # what Feast's registered sqlite3 adapter stores, computed once per row not per value
            ts = int(to_naive_utc(timestamp).timestamp())
            cts = int(to_naive_utc(created).timestamp()) if created is not None else None
            rows.extend(
                (key, fname, val.SerializeToString(), ts, cts) for fname, val in values.items()
            )
        rows.sort(key=lambda r: (r[0], r[1]))  # primary-key order: sequential B-tree inserts
        with conn:
            conn.executemany(sql, rows)
        if progress:
            progress(len(data))
