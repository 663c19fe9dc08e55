"""Append-only, hash-chained audit log: who saw what, when and why, provably in order.

Each record stores one `AuditEvent` as canonical JSON (`json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False, allow_nan=False)`, UTF-8) and
`hash = SHA-256(prev_hash || event JSON || decimal seq)`, the first `prev_hash` being 64 zeros.
A single writer thread per `AuditLog` group-commits queued events (one transaction per
batch); processes serialise on the database lock (SQLite BEGIN IMMEDIATE, PostgreSQL
`pg_advisory_xact_lock`), so the chain stays linear. A failed commit fails every waiting
append with `StorageError`: the caller must refuse the request it was recording.

`verify` streams the chain and names the first bad record: changed (content, hash or query
columns), deleted (a seq gap, or a renumbered tail whose link points at nothing), inserted
(a record sharing or skipping back to another's predecessor) or reordered (a record chained
after one that follows it). The chain is unkeyed: whoever can write the table and recompute
every later hash can rewrite or truncate the tail, so keep `head()` out of band and pass it
back as `verify(anchor=...)`.

`released` holds only what left the gateway in aggregate: ints, finite floats, bools,
strings of at most 200 characters and lists of such strings. Keys that name secrets are
refused (any word token(s), secret(s), password(s), passwd, passphrase, pwd, credential(s),
apikey, salt, jwt, bearer, cookie; a last word `key`/`keys`; `key` with `material`), and
so are strings that look like key material or personal data (PEM, JWT, 32+ hex digits,
40+ mixed-case base64 characters, e-mail addresses). `key_id` values are fine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Literal, NamedTuple, get_args

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.db import read_only
from gateway.errors import ConfigurationError, StorageError, ValidationFailed

__all__ = ["GENESIS_HASH", "AppendedEvent", "AuditEvent", "AuditLog", "StoredEvent",
           "VerifyReport", "chain_hash"]

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
EventKind = Literal["decision", "ingest", "dp_release", "he_compute", "synthetic_release",
                    "publication", "key_use", "budget_charge", "acknowledgement"]
Decision = Literal["allow", "deny", "n/a"]
Problem = Literal["changed", "deleted", "inserted", "reordered"]
ReleasedValue = int | float | bool | str | Sequence[str]  # lists are stored as tuples
MAX_TEXT, MAX_REASON, MAX_RELEASED_KEYS, MAX_LIST = 200, 2000, 64, 1000
MAX_QUERY_LIMIT = 1000
_SECRET_WORDS = frozenset({"token", "tokens", "secret", "secrets", "password", "passwords",
                           "passwd", "passphrase", "pwd", "credential", "credentials", "apikey",
                           "salt", "jwt", "bearer", "cookie"})
_SECRET_VALUE = re.compile(r"-----BEGIN|eyJ[\w-]{5,}\.[\w-]{5,}\.|[0-9a-fA-F]{32,}"
                           r"|[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=-]{40,}")
_CAMEL, _WORD = re.compile(r"([a-z0-9])([A-Z])"), re.compile(r"[a-z0-9]+")
_KINDS, _DECISIONS = frozenset(get_args(EventKind)), frozenset(get_args(Decision))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def _utc_text(moment: datetime) -> str:
    """Fixed-width UTC text (microseconds, 'Z'): sorts as time does."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool | None:
    """True if `key` names a secret, None if it is not a usable name at all."""
    words = _WORD.findall(_CAMEL.sub(r"\1_\2", key).lower()) if 0 < len(key) <= 64 else []
    if not words:
        return None
    return bool(_SECRET_WORDS.intersection(words) or words[-1] in ("key", "keys")
                or {"key", "material"} <= set(words))


def _check_released(released: Mapping[str, Any]) -> Mapping[str, ReleasedValue]:
    if not isinstance(released, Mapping) or len(released) > MAX_RELEASED_KEYS:
        raise ValidationFailed(f"released must be a mapping of at most {MAX_RELEASED_KEYS} keys")
    clean: dict[str, ReleasedValue] = {}
    for key, value in released.items():
        secret = _secret_key(key) if isinstance(key, str) else None
        if secret is None:
            raise ValidationFailed("released keys must be names of 1 to 64 characters")
        if secret:
            raise ValidationFailed(f"released key {key!r} names a secret; record only key ids")
        clean_value = _released_value(value)
        if clean_value is not None:
            clean[key] = clean_value
            continue
        raise ValidationFailed(
            f"released[{key!r}] must be a number, a bool, a short name or a list of names "
            "(never data values or secrets)")
    return MappingProxyType(clean)


def _released_value(value: object) -> ReleasedValue | None:
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, str):
        return value if _short_clean(value) else None
    if isinstance(value, list | tuple) and len(value) <= MAX_LIST and all(
            isinstance(item, str) and _short_clean(item) for item in value):
        return tuple(value)
    return None


def _short_clean(value: str) -> bool:
    """A short string that does not look like key material or personal data."""
    if len(value) > MAX_TEXT or _SECRET_VALUE.search(value):
        return False
    return not any(re.search(r"\d", run) and re.search(r"[a-z]", run) and re.search(r"[A-Z]", run)
                   for run in _BASE64_RUN.findall(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One thing that happened: a decision, an ingest, a release, a key use, ..."""

    kind: EventKind
    subject: str
    action: str
    resource: str
    decision: Decision = "n/a"
    rule: str = ""
    reason: str = ""
    purpose: str = ""
    roles: Sequence[str] = ()
    request_id: str = ""
    policy_version: str = ""
    released: Mapping[str, ReleasedValue] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValidationFailed(f"unknown audit event kind {self.kind!r}")
        if self.decision not in _DECISIONS:
            raise ValidationFailed("decision must be 'allow', 'deny' or 'n/a'")
        for name in ("subject", "action", "resource", "rule", "purpose", "request_id",
                     "policy_version", "reason"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > (
                    MAX_REASON if name == "reason" else MAX_TEXT):
                raise ValidationFailed(f"audit event {name} must be a string of bounded length")
        roles = tuple(self.roles) if isinstance(self.roles, (list, tuple)) else None
        if roles is None or not all(isinstance(r, str) and len(r) <= MAX_TEXT for r in roles):
            raise ValidationFailed("audit event roles must be a list of short strings")
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise ValidationFailed("audit event time must be timezone-aware")
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "released", _check_released(self.released))

    def to_json(self) -> str:
        """The canonical JSON that is stored and hashed."""
        body = {name: getattr(self, name) for name in self.__dataclass_fields__}
        body.update(roles=list(self.roles), time=_utc_text(self.time), released={
            k: list(v) if isinstance(v, tuple) else v for k, v in self.released.items()})
        return _CANONICAL.encode(body)

    @classmethod
    def from_json(cls, data: str) -> AuditEvent:
        """Parse and re-validate a stored event; ValidationFailed if it is not one."""
        try:
            body = json.loads(data)
            return cls(**{**body, "time": datetime.fromisoformat(body["time"])})
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationFailed(f"not an audit event: {type(exc).__name__}") from None


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """Where an event landed in the chain."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A record read back from the log."""

    seq: int
    hash: str
    prev_hash: str
    created_at: datetime
    event: AuditEvent


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of recomputing the chain; names the first bad record."""

    ok: bool
    records: int
    first_bad_seq: int | None
    problem: Problem | None
    message: str
    head: AppendedEvent | None = None


def chain_hash(prev_hash: str, event_json: str, seq: int) -> str:
    """SHA-256(prev_hash || event JSON || seq) as 64 hex digits."""
    data = prev_hash.encode("ascii") + event_json.encode("utf-8") + str(seq).encode("ascii")
    return hashlib.sha256(data).hexdigest()


class _Row(NamedTuple):
    seq: int
    event: str
    prev_hash: str
    hash: str
    created_at: str
    subject: str
    purpose: str
    action: str
    event_time: str


class _Request:
    __slots__ = ("future", "rows")

    def __init__(self, events: Sequence[AuditEvent]) -> None:
        # Rows are prepared by the caller so the single writer thread only chains and inserts.
        self.rows: list[dict[str, Any]] = [
            {"event": e.to_json(), "subject": e.subject, "purpose": e.purpose,
             "action": e.action, "event_time": _utc_text(e.time)} for e in events]
        self.future: Future[list[AppendedEvent]] = Future()


_STOP = object()


def _describe(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}"


def _size(batch: list[_Request]) -> int:
    return sum(len(request.rows) for request in batch)


def _fail(batch: list[_Request], exc: BaseException) -> None:
    for request in batch:  # one exception each: they are raised in different threads
        request.future.set_exception(StorageError(f"audit log unavailable: {_describe(exc)}"))


class AuditLog:
    """The audit log on `engine` (SQLite or PostgreSQL); thread- and process-safe."""

    def __init__(self, engine: sa.Engine, *, table_name: str = "audit_events",
                 max_batch: int = 2000, timeout: float = 60.0) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"audit log needs SQLite or PostgreSQL, not "
                                     f"{engine.dialect.name}")
        if not _TABLE.match(table_name):
            raise ConfigurationError(f"invalid audit table name {table_name!r}")
        self._engine, self._max_batch, self._timeout = engine, max_batch, timeout
        self._pg = engine.dialect.name == "postgresql"
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"gateway.audit:{table_name}".encode()).digest()[:8], "big",
            signed=True)
        t = self._table = sa.Table(
            table_name, sa.MetaData(),
            sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                      primary_key=True, autoincrement=False),
            sa.Column("event", sa.Text, nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("created_at", sa.String(27), nullable=False),
            # Copies of event fields for query(); verify() checks they match the event.
            sa.Column("subject", sa.String(MAX_TEXT), nullable=False),
            sa.Column("purpose", sa.String(MAX_TEXT), nullable=False),
            sa.Column("action", sa.String(MAX_TEXT), nullable=False),
            sa.Column("event_time", sa.String(27), nullable=False))
        for name in ("subject", "purpose", "event_time"):  # no index on hash: see _seq_of
            sa.Index(f"ix_{table_name}_{name}", t.c[name])
        # Built once: SQLAlchemy then reuses their cache keys and compiled forms.
        self._insert = sa.insert(t)
        self._head_stmt = sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._state_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._closed = False
        self.create_schema()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _storage(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"audit log unavailable: {_describe(exc)}") from exc

    def _lock(self, conn: sa.Connection) -> None:
        if self._pg:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._lock_key})

    def create_schema(self) -> None:
        """Create the table and indexes if missing (idempotent, safe across processes)."""
        with self._storage(), self._engine.begin() as conn:
            self._lock(conn)
            self._table.metadata.create_all(conn, checkfirst=True)

    def append(self, event: AuditEvent) -> AppendedEvent:
        """Record `event`; returns once it is durably committed, raises StorageError if not."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AppendedEvent]:
        """Record `events` contiguously and atomically (all or none)."""
        if not events:
            return []
        request = _Request(events)
        with self._state_lock:
            if self._closed:
                raise StorageError("audit log unavailable: it is closed")
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="audit-writer",
                                                daemon=True)
                self._writer.start()
            self._queue.put(request)
        try:
            return request.future.result(timeout=self._timeout)
        except FutureTimeout:
            if request.future.cancel():  # never started: it will not be written
                raise StorageError("audit log unavailable: timed out waiting") from None
            return request.future.result()  # already being committed: wait for the outcome

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            self._queue.put(_STOP)
        if writer is not None:
            writer.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is _STOP:
                return
            batch, count = [item], len(item.rows)
            while count < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                count += len(item.rows)
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if live:
                self._commit(live)

    def _commit(self, batch: list[_Request]) -> None:
        try:
            with self._engine.begin() as conn:
                rows, results = self._chain(conn, batch)
                conn.execute(self._insert, rows)
        except SQLAlchemyError as exc:
            logger.error("audit commit of %d events failed: %s", _size(batch), _describe(exc))
            return _fail(batch, exc)
        except Exception as exc:  # a bug must not leave appends waiting: fail them too
            logger.exception("audit commit of %d events failed", _size(batch))
            return _fail(batch, exc)
        for request, result in zip(batch, results, strict=True):
            request.future.set_result(result)

    def _chain(self, conn: sa.Connection, batch: list[_Request]
               ) -> tuple[list[dict[str, Any]], list[list[AppendedEvent]]]:
        """Lock the chain head and link the batch after it, in queue order."""
        self._lock(conn)
        head = conn.execute(self._head_stmt).first()
        seq, prev = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
        created = _utc_text(datetime.now(UTC))
        rows: list[dict[str, Any]] = []
        results: list[list[AppendedEvent]] = []
        for request in batch:
            out = []
            for row in request.rows:
                seq += 1
                digest = chain_hash(prev, row["event"], seq)
                row.update(seq=seq, prev_hash=prev, hash=digest, created_at=created)
                out.append(AppendedEvent(seq, digest))
                prev = digest
            rows.extend(request.rows)
            results.append(out)
        return rows, results

    def head(self) -> AppendedEvent | None:
        """The last record (keep it out of band as an anchor for `verify`)."""
        with self._storage(), read_only(self._engine) as conn:
            row = conn.execute(self._head_stmt).first()
        return AppendedEvent(row[0], row[1]) if row is not None else None

    def _rows(self, after: int = 0, upto: int | None = None, page: int = 1000) -> Iterator[_Row]:
        """Records in seq order, one short transaction per page."""
        t = self._table
        while True:
            stmt = sa.select(*(t.c[name] for name in _Row._fields)).where(t.c.seq > after)
            if upto is not None:
                stmt = stmt.where(t.c.seq <= upto)
            with self._storage(), read_only(self._engine) as conn:
                rows = [_Row(*r) for r in conn.execute(stmt.order_by(t.c.seq).limit(page))]
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].seq

    def _seq_of(self, digest: str, *, after: int | None = None,
                before: int | None = None) -> int | None:
        """The first seq holding `digest`: a scan, run only to classify a bad record."""
        t = self._table
        stmt = sa.select(t.c.seq).where(t.c.hash == digest)
        stmt = stmt.where(t.c.seq > after) if after is not None else stmt
        stmt = stmt.where(t.c.seq < before) if before is not None else stmt
        with self._storage(), read_only(self._engine) as conn:
            return conn.execute(stmt.order_by(t.c.seq).limit(1)).scalar()

    def verify(self, *, anchor: AppendedEvent | None = None, page: int = 1000) -> VerifyReport:
        """Recompute the chain in seq order (streaming); `anchor` is a head kept elsewhere."""
        head = self.head()
        prev: _Row | None = None
        count = 0
        for row in self._rows(upto=head.seq if head else 0, page=page):
            found = self._check(prev, row)
            if found is None and anchor and anchor.seq == row.seq and anchor.hash != row.hash:
                found = row.seq, "changed", f"record {row.seq} does not carry the anchored hash"
            if found is not None:
                # Records before the first bad one are sound (and numbered 1..count).
                return VerifyReport(False, min(count, found[0] - 1), *found)
            prev, count = row, count + 1
        if anchor is not None and anchor.seq > count:
            return VerifyReport(False, count, anchor.seq, "deleted",
                                f"anchor record {anchor.seq} is missing: the log was truncated")
        return VerifyReport(True, count, None, None, f"{count} records verified", head)

    def _check(self, prev: _Row | None, row: _Row) -> tuple[int, Problem, str] | None:
        """The first problem at `row`, given that everything up to `prev` was sound."""
        want_seq, want_prev = (prev.seq + 1, prev.hash) if prev else (1, GENESIS_HASH)
        s = row.seq
        if s != want_seq:
            if self._seq_of(row.prev_hash, after=s) is not None:
                return s, "reordered", f"record {s} is chained after a record that follows it"
            missing = f"{want_seq}" if s == want_seq + 1 else f"{want_seq}..{s - 1}"
            return want_seq, "deleted", f"record {missing} missing: seq jumps to {s}"
        if row.prev_hash != want_prev:
            if prev is not None and row.prev_hash == prev.prev_hash:
                if chain_hash(row.prev_hash, row.event, s - 1) == row.hash:
                    return prev.seq, "inserted", (
                        f"record {prev.seq} was inserted: record {s} was chained at seq {s - 1}")
                return s, "inserted", f"record {s} claims the same predecessor as record {s - 1}"
            if (later := self._seq_of(row.prev_hash, after=s)) is not None:
                return s, "reordered", f"record {s} is chained after record {later}"
            if (earlier := self._seq_of(row.prev_hash, before=s)) is not None:
                return s, "inserted", f"record {s} is chained after record {earlier}, not {s - 1}"
            consistent = chain_hash(row.prev_hash, row.event, s) == row.hash
            if chain_hash(row.prev_hash, row.event, s + 1) == row.hash or (consistent and not prev):
                return s, "deleted", f"the record chained before record {s} is missing"
            if consistent and prev is not None:
                return prev.seq, "changed", (
                    f"record {prev.seq} was replaced: record {s} is chained to another record")
            return s, "changed", f"record {s}: prev_hash and hash do not match its content"
        if chain_hash(row.prev_hash, row.event, s) != row.hash:
            after = next(self._rows(after=s, page=1), None)
            if after is not None and after.prev_hash == row.prev_hash:
                return s, "inserted", f"record {s} is not in the chain: record {s + 1} skips it"
            return s, "changed", f"record {s}: hash does not match its content"
        try:
            body = json.loads(row.event)
            copies = (body["subject"], body["purpose"], body["action"], body["time"])
        except (ValueError, KeyError, TypeError):
            return s, "changed", f"record {s}: event is not a valid audit event"
        if copies != (row.subject, row.purpose, row.action, row.event_time):
            return s, "changed", f"record {s}: query columns disagree with the event"
        return None

    def query(self, subject: str | None = None, purpose: str | None = None,
              action: str | None = None, since: datetime | None = None,
              until: datetime | None = None, limit: int = 100,
              after_seq: int | None = None) -> list[StoredEvent]:
        """Events matching every given filter, by seq; `since` inclusive, `until` exclusive."""
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
        if any(m is not None and m.utcoffset() is None for m in (since, until)):
            raise ValidationFailed("since and until must be timezone-aware")
        t = self._table
        stmt = sa.select(*(t.c[name] for name in _Row._fields)).order_by(t.c.seq).limit(limit)
        for column, value in (("subject", subject), ("purpose", purpose), ("action", action)):
            stmt = stmt.where(t.c[column] == value) if value is not None else stmt
        stmt = stmt.where(t.c.event_time >= _utc_text(since)) if since else stmt
        stmt = stmt.where(t.c.event_time < _utc_text(until)) if until else stmt
        stmt = stmt.where(t.c.seq > after_seq) if after_seq is not None else stmt
        with self._storage(), read_only(self._engine) as conn:
            rows = [_Row(*r) for r in conn.execute(stmt)]
        return [self._stored(row) for row in rows]

    def _stored(self, row: _Row) -> StoredEvent:
        """A row as a StoredEvent; a row whose columns disagree with its event is refused."""
        try:
            event = AuditEvent.from_json(row.event)
        except ValidationFailed:
            event = None
        if event is None or (event.subject, event.purpose, event.action, _utc_text(event.time)
                             ) != (row.subject, row.purpose, row.action, row.event_time):
            raise StorageError(f"audit record {row.seq} is corrupt; run verify")
        return StoredEvent(row.seq, row.hash, row.prev_hash,
                           datetime.fromisoformat(row.created_at), event)

    def export(self, target: str | Path | IO[str], *, after_seq: int = 0) -> int:
        """Stream records after `after_seq` as JSON lines for a SIEM; returns the count."""
        if not isinstance(target, str | Path):
            return self._export(target, after_seq)
        with Path(target).open("w", encoding="utf-8") as handle:
            return self._export(handle, after_seq)

    def _export(self, handle: IO[str], after_seq: int) -> int:
        count = 0
        for row in self._rows(after=after_seq):
            # The stored event text is spliced in verbatim so the line re-verifies byte for byte.
            head = json.dumps({"seq": row.seq, "hash": row.hash, "prev_hash": row.prev_hash,
                               "created_at": row.created_at}, separators=(",", ":"))
            handle.write(f'{head[:-1]},"event":{row.event}}}\n')
            count += 1
        return count
