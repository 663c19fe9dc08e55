"""The hash-chained audit log: chain integrity, tamper detection, concurrency, fail-closed."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from gateway.audit import (
    GENESIS_HASH,
    AppendedEvent,
    AuditEvent,
    AuditLog,
    chain_hash,
)
from gateway.db import create_database_engine
from gateway.errors import ConfigurationError, StorageError, ValidationFailed

PG_URL = "postgresql://root@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Store:
    """One database under test: its URL, the table this test owns and an engine on it."""

    url: str
    table: str
    engine: Engine

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Run raw SQL ({t} is the table) as an attacker or an operator would."""
        with self.engine.begin() as conn:
            result = conn.execute(text(statement.format(t=self.table)), params)
            return list(result) if result.returns_rows else []

    def row(self, seq: int) -> Any:
        return self.sql("SELECT seq, event, prev_hash, hash FROM {t} WHERE seq = :s", s=seq)[0]

    def count(self) -> int:
        return int(self.sql("SELECT count(*) FROM {t}")[0][0])

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def _postgres_answers() -> str | None:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at 127.0.0.1:5432 does not answer: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh audit table on SQLite (a temporary file) or on the PostgreSQL server."""
    if request.param == "sqlite":
        url, table = f"sqlite:///{tmp_path / 'gateway.db'}", "audit_events"
    else:
        if (problem := _postgres_answers()) is not None:
            pytest.skip(problem)
        url, table = PG_URL, f"audit_test_{uuid.uuid4().hex[:12]}"
    engine = create_database_engine(url)
    yield Store(url, table, engine)
    if request.param == "postgres":
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
            conn.execute(text(f"DROP FUNCTION IF EXISTS {table}_fail() CASCADE"))
    engine.dispose()


@pytest.fixture
def log(store: Store) -> Iterator[AuditLog]:
    with AuditLog(store.engine, table_name=store.table) as audit:
        yield audit


def event(i: int = 0, **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "kind": "decision", "subject": f"user-{i % 3}", "roles": ["analyst"],
        "purpose": "fraud-detection", "action": "read", "resource": "dataset:customers",
        "decision": "allow", "rule": "analysts-read-masked", "reason": "role analyst",
        "policy_version": "v7", "request_id": f"req-{i}", "time": T0 + timedelta(seconds=i),
        "released": {"rows": 10 * i, "features": ["age_band", "region"], "epsilon": 0.5},
    }
    return AuditEvent(**(fields | changes))


def filled(log: AuditLog, n: int = 10) -> list[AppendedEvent]:
    return [log.append(event(i)) for i in range(n)]


# --- append and verify ---------------------------------------------------------------------


def test_when_events_are_appended_then_the_chain_verifies(store: Store, log: AuditLog) -> None:
    appended = filled(log, 25)

    assert [a.seq for a in appended] == list(range(1, 26))
    report = log.verify(page=7)  # several pages
    assert (report.ok, report.records, report.problem, report.first_bad_seq) == (True, 25, None, None)
    assert report.head == appended[-1] == log.head()


def test_when_a_record_is_stored_then_its_hash_is_sha256_of_prev_event_and_seq(
    store: Store, log: AuditLog
) -> None:
    first, second = log.append(event(1)), log.append(event(2))

    seq, body, prev, digest = store.row(1)
    assert prev == GENESIS_HASH == "0" * 64
    assert digest == first.hash == hashlib.sha256(f"{prev}{body}{seq}".encode()).hexdigest()
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    assert store.row(2).prev_hash == first.hash and store.row(2).hash == second.hash
    assert json.loads(body)["time"] == "2025-03-01T12:00:01.123456Z"


def test_when_append_many_is_used_then_the_events_are_contiguous(log: AuditLog) -> None:
    log.append(event(0))
    appended = log.append_many([event(i) for i in range(1, 6)])

    assert [a.seq for a in appended] == [2, 3, 4, 5, 6]
    assert log.append_many([]) == []
    assert log.verify().ok


def test_when_the_log_is_reopened_then_the_chain_continues(store: Store) -> None:
    with AuditLog(store.engine, table_name=store.table) as first:
        filled(first, 3)
    with AuditLog(store.engine, table_name=store.table) as second:
        second.create_schema()  # idempotent
        assert second.append(event(9)).seq == 4
        assert second.verify().records == 4


def test_when_the_log_is_empty_then_it_verifies(log: AuditLog) -> None:
    report = log.verify()

    assert (report.ok, report.records, report.head) == (True, 0, None)


# --- tampering -----------------------------------------------------------------------------


def _forged() -> str:
    return event(99, subject="mallory", time=T0 - timedelta(days=1)).to_json()


def _insert(store: Store, seq: int, body: str, prev: str, digest: str) -> None:
    parsed = json.loads(body)
    store.sql(
        "INSERT INTO {t} (seq, event, prev_hash, hash, created_at, subject, purpose, action,"
        " event_time) VALUES (:seq, :event, :prev, :hash, :created, :subject, :purpose, :action,"
        " :time)",
        seq=seq, event=body, prev=prev, hash=digest, created=parsed["time"],
        subject=parsed["subject"], purpose=parsed["purpose"], action=parsed["action"],
        time=parsed["time"],
    )


def _shift_up(store: Store, start: int) -> None:
    """Renumber records seq >= start one up (two steps: seq is the primary key)."""
    store.sql("UPDATE {t} SET seq = -seq WHERE seq >= :s", s=start)
    store.sql("UPDATE {t} SET seq = 1 - seq WHERE seq < 0")


def _swap(store: Store, a: int, b: int) -> None:
    store.sql("UPDATE {t} SET seq = -1 WHERE seq = :a", a=a)
    store.sql("UPDATE {t} SET seq = :a WHERE seq = :b", a=a, b=b)
    store.sql("UPDATE {t} SET seq = :b WHERE seq = -1", b=b)


def tamper_changed(store: Store) -> None:
    store.sql("UPDATE {t} SET event = REPLACE(event, :a, :b) WHERE seq = 6", a='"rows":50', b='"rows":5')


def tamper_changed_and_rehashed(store: Store) -> None:
    _, body, prev, _ = store.row(6)
    body = body.replace('"rows":50', '"rows":5')
    store.sql("UPDATE {t} SET event = :e, hash = :h WHERE seq = 6", e=body, h=chain_hash(prev, body, 6))


def tamper_changed_column(store: Store) -> None:
    store.sql("UPDATE {t} SET subject = 'someone-else' WHERE seq = 6")


def tamper_deleted(store: Store) -> None:
    store.sql("DELETE FROM {t} WHERE seq = 6")


def tamper_deleted_first(store: Store) -> None:
    store.sql("DELETE FROM {t} WHERE seq = 1")


def tamper_deleted_and_renumbered(store: Store) -> None:
    store.sql("DELETE FROM {t} WHERE seq = 6")
    store.sql("UPDATE {t} SET seq = -seq WHERE seq > 6")
    store.sql("UPDATE {t} SET seq = -seq - 1 WHERE seq < 0")


def tamper_inserted_middle(store: Store) -> None:
    """A careful forger: renumbers the tail and chains the forgery correctly after record 5."""
    prev = store.row(5).hash
    _shift_up(store, 6)
    body = _forged()
    _insert(store, 6, body, prev, chain_hash(prev, body, 6))


def tamper_inserted_middle_bogus_hash(store: Store) -> None:
    prev = store.row(5).hash
    _shift_up(store, 6)
    _insert(store, 6, _forged(), prev, hashlib.sha256(b"made up").hexdigest())


def tamper_inserted_end(store: Store) -> None:
    """A forgery appended after record 10, copying record 10's link (a replayed record)."""
    prev = store.row(10).prev_hash
    body = _forged()
    _insert(store, 11, body, prev, chain_hash(prev, body, 11))


def tamper_inserted_end_chained_to_old(store: Store) -> None:
    prev = store.row(3).hash
    body = _forged()
    _insert(store, 11, body, prev, chain_hash(prev, body, 11))


def tamper_reordered(store: Store) -> None:
    _swap(store, 3, 8)


def tamper_reordered_adjacent(store: Store) -> None:
    _swap(store, 6, 7)


@pytest.mark.parametrize(
    ("tamper", "problem", "first_bad"),
    [
        (tamper_changed, "changed", 6),
        (tamper_changed_and_rehashed, "changed", 6),
        (tamper_changed_column, "changed", 6),
        (tamper_deleted, "deleted", 6),
        (tamper_deleted_first, "deleted", 1),
        (tamper_deleted_and_renumbered, "deleted", 6),
        (tamper_inserted_middle, "inserted", 6),
        (tamper_inserted_middle_bogus_hash, "inserted", 6),
        (tamper_inserted_end, "inserted", 11),
        (tamper_inserted_end_chained_to_old, "inserted", 11),
        (tamper_reordered, "reordered", 3),
        (tamper_reordered_adjacent, "reordered", 6),
    ],
    ids=lambda v: v.__name__.removeprefix("tamper_") if callable(v) else str(v),
)
def test_when_a_record_is_tampered_with_then_verify_names_it(
    store: Store, log: AuditLog, tamper: Any, problem: str, first_bad: int
) -> None:
    filled(log, 10)
    assert log.verify().ok

    tamper(store)
    report = log.verify(page=4)

    assert (report.ok, report.problem, report.first_bad_seq) == (False, problem, first_bad), report
    assert str(first_bad) in report.message
    assert report.records == first_bad - 1  # the sound records before it


def test_when_the_tail_is_truncated_then_only_an_anchor_reveals_it(
    store: Store, log: AuditLog
) -> None:
    anchor = filled(log, 10)[-1]
    store.sql("DELETE FROM {t} WHERE seq >= 9")

    assert log.verify().ok  # a chain cannot know about records that were after its end
    report = log.verify(anchor=anchor)
    assert (report.ok, report.problem, report.first_bad_seq) == (False, "deleted", 10)
    assert log.verify(anchor=AppendedEvent(8, "f" * 64)).problem == "changed"


def test_when_query_meets_a_tampered_row_then_it_refuses(store: Store, log: AuditLog) -> None:
    filled(log, 3)
    store.sql("UPDATE {t} SET subject = 'user-0' WHERE seq = 2")

    with pytest.raises(StorageError, match="audit record 2 is corrupt"):
        log.query(subject="user-0")


# --- concurrency ---------------------------------------------------------------------------

WRITERS, PER_WRITER = 8, 500


def _assert_one_chain(log: AuditLog, results: dict[int, list[int]]) -> None:
    seqs = sorted(s for got in results.values() for s in got)
    assert seqs == list(range(1, WRITERS * PER_WRITER + 1))
    assert all(got == sorted(got) for got in results.values())  # each writer's order is kept
    report = log.verify()
    assert (report.ok, report.records) == (True, WRITERS * PER_WRITER), report


def test_when_threads_share_a_log_then_one_linear_chain_results(log: AuditLog) -> None:
    results: dict[int, list[int]] = {}

    def write(worker: int) -> None:
        results[worker] = [log.append(event(i, subject=f"w{worker}")).seq for i in range(PER_WRITER)]

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    _assert_one_chain(log, results)


def _process_writer(url: str, table: str, worker: int, start: Any, out: Any) -> None:
    """Runs in a spawned process: its own engine and AuditLog, PER_WRITER appends from 10 threads."""
    engine = create_database_engine(url)
    seqs: list[int] = []
    with AuditLog(engine, table_name=table) as audit:
        start.wait(timeout=120)

        def write(part: int) -> None:
            for i in range(PER_WRITER // 10):
                seqs.append(audit.append(event(i, subject=f"p{worker}-{part}")).seq)

        threads = [threading.Thread(target=write, args=(p,)) for p in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    engine.dispose()
    out.put((worker, seqs, os.getpid()))


@pytest.mark.slow
def test_when_processes_append_to_one_database_then_one_linear_chain_results(
    store: Store, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # so spawned children can import this module
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [
        ctx.Process(target=_process_writer, args=(store.url, store.table, w, start, out))
        for w in range(WRITERS)
    ]
    for proc in procs:
        proc.start()
    try:
        got = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
    assert all(proc.exitcode == 0 for proc in procs)
    assert len({pid for _, _, pid in got}) == WRITERS

    # Within a process threads interleave, so only the set of seqs is compared.
    seqs = sorted(s for _, got_seqs, _ in got for s in got_seqs)
    assert seqs == list(range(1, WRITERS * PER_WRITER + 1))
    report = log.verify()
    assert (report.ok, report.records) == (True, WRITERS * PER_WRITER), report


# --- fail closed ---------------------------------------------------------------------------


def _fail_inserts(store: Store, when: str) -> None:
    """Make inserts fail (a trigger), like a full disk or a revoked grant would."""
    if store.postgres:
        store.sql(
            "CREATE FUNCTION {t}_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {when} THEN RAISE EXCEPTION 'simulated write failure'; "
            "END IF; RETURN NEW; END $$"
        )
        store.sql("CREATE TRIGGER {t}_fail BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_fail()")
    else:
        store.sql(
            "CREATE TRIGGER {t}_fail BEFORE INSERT ON {t} WHEN " + when
            + " BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
        )


def _heal(store: Store) -> None:
    store.sql("DROP TRIGGER {t}_fail ON {t}" if store.postgres else "DROP TRIGGER {t}_fail")


def test_when_a_commit_fails_mid_batch_then_nothing_is_written(store: Store, log: AuditLog) -> None:
    filled(log, 3)
    _fail_inserts(store, "NEW.seq = 6")

    with pytest.raises(StorageError, match=r"audit log unavailable: .*simulated write failure"):
        log.append_many([event(i) for i in range(4)])  # seq 4..7: the third insert fails
    assert store.count() == 3

    _heal(store)
    assert log.append(event(4)).seq == 4
    assert log.verify().records == 4


def test_when_the_database_fails_then_every_waiting_append_raises(
    store: Store, log: AuditLog
) -> None:
    filled(log, 2)
    _fail_inserts(store, "NEW.seq > 0")
    outcomes: list[BaseException | AppendedEvent] = []

    def write(i: int) -> None:
        try:
            outcomes.append(log.append(event(i)))
        except StorageError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 16 and all(isinstance(o, StorageError) for o in outcomes)
    assert store.count() == 2 and log.verify().ok


def test_when_the_table_is_dropped_then_append_raises(store: Store, log: AuditLog) -> None:
    filled(log, 2)
    store.sql("DROP TABLE {t}")

    with pytest.raises(StorageError, match="audit log unavailable"):
        log.append(event(3))
    with pytest.raises(StorageError, match="audit log unavailable"):
        log.query()


@pytest.mark.postgres
def test_when_the_server_does_not_answer_then_the_log_refuses_to_open() -> None:
    engine = create_database_engine("postgresql://root@127.0.0.1:1/test?connect_timeout=2")
    try:
        with pytest.raises(StorageError, match="audit log unavailable"):
            AuditLog(engine)
    finally:
        engine.dispose()


def test_when_sqlite_stays_locked_past_the_timeout_then_queued_appends_are_refused(
    tmp_path: Path,
) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'locked.db'}")
    with AuditLog(engine, timeout=1.5) as audit:
        audit.append(event(0))
        blocker = engine.connect()
        blocker.execute(text("SELECT 1"))  # begin: BEGIN IMMEDIATE holds the write lock
        first: list[Any] = []

        def in_flight() -> None:
            try:
                first.append(audit.append(event(1)))
            except StorageError as exc:
                first.append(exc)

        running = threading.Thread(target=in_flight)
        running.start()
        time.sleep(0.5)  # the writer is now inside its (blocked) transaction with event 1
        with pytest.raises(StorageError, match="timed out"):
            audit.append(event(2))  # queued behind it: cancelled, never written
        blocker.rollback()
        blocker.close()
        running.join(timeout=30)
        assert first == [AppendedEvent(2, first[0].hash)]  # in flight: it waits and commits
        assert [s.event.request_id for s in audit.query()] == ["req-0", "req-1"]
        assert audit.append(event(3)).seq == 3
    engine.dispose()


def test_when_the_log_is_closed_then_append_raises(store: Store) -> None:
    with AuditLog(store.engine, table_name=store.table) as audit:
        audit.append(event(0))
    with pytest.raises(StorageError, match="closed"):
        audit.append(event(1))
    audit.close()  # idempotent


def test_when_the_table_name_is_unsafe_then_it_is_refused(store: Store) -> None:
    with pytest.raises(ConfigurationError, match="invalid audit table name"):
        AuditLog(store.engine, table_name="audit; DROP TABLE x")


# --- the event schema ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "released",
    [
        {"token": "abc"},
        {"access_token": "abc"},
        {"api_key": "abc"},
        {"apiKey": "abc"},
        {"signingKey": "abc"},
        {"key_material": "abc"},
        {"client_secret": "abc"},
        {"password": 1},
        {"db-passwd": "abc"},
        {"credentials": ["a"]},
        {"rows": [1, 2, 3]},  # raw values, not names
        {"row": {"name": "Ada"}},
        {"blob": b"raw"},
        {"nothing": None},
        {"epsilon": float("nan")},
        {"epsilon": float("inf")},
        {"note": "x" * 201},
        {"features": ["ok", "y" * 201]},
        {"who": "ada.lovelace@example.com"},
        {"digest": "ab" * 20},
        {"jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.sig"},
        {"cert": "-----BEGIN PRIVATE KEY-----"},
        {"opaque": base64.b64encode(bytes(range(40))).decode()},
        {"": 1},
        {"k" * 65: 1},
        {str(i): i for i in range(65)},
    ],
    ids=lambda r: ",".join(str(k)[:20] for k in list(r)[:2]) or "empty-key",
)
def test_when_released_holds_secrets_or_raw_values_then_it_is_refused(
    released: dict[str, Any],
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        event(released=released)

    for value in released.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in caught.value.message  # never echo the value


def test_when_released_holds_counts_and_names_then_it_is_kept() -> None:
    released = {"rows": 120, "entities": 7, "epsilon": 0.25, "delta": 1e-6, "masked": True,
                "features": ["age_band", "region"], "key_id": "customer-key@1a2b3c4d",
                "tokenized_columns": ["email"], "keyId": "k@1"}
    ev = event(released=released)

    assert dict(ev.released) == released | {"features": ("age_band", "region"),
                                             "tokenized_columns": ("email",)}
    with pytest.raises(TypeError):
        ev.released["rows"] = 0  # type: ignore[index]
    assert AuditEvent.from_json(ev.to_json()) == ev


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "gossip"}, "unknown audit event kind"),
        ({"decision": "maybe"}, "decision must be"),
        ({"time": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"roles": "admin"}, "roles must be a list"),
        ({"subject": "s" * 201}, "subject must be a string"),
        ({"reason": 5}, "reason must be a string"),
    ],
)
def test_when_an_event_field_is_malformed_then_it_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        event(**changes)


def test_when_time_has_another_offset_then_it_is_stored_in_utc() -> None:
    cest = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    assert json.loads(event(time=cest).to_json())["time"] == "2025-06-01T12:00:00.000000Z"


_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    released=st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True),
        st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                  _NAMES, st.lists(_NAMES, max_size=4)),
        max_size=6,
    ),
    reason=_NAMES,
)
def test_when_an_event_is_accepted_then_it_round_trips_canonically(
    released: dict[str, Any], reason: str
) -> None:
    try:
        ev = event(released=released, reason=reason)
    except ValidationFailed:
        return
    body = ev.to_json()
    assert AuditEvent.from_json(body) == ev
    assert AuditEvent.from_json(body).to_json() == body


# --- export and query ----------------------------------------------------------------------


def test_when_exported_then_each_line_is_json_that_re_verifies(
    store: Store, log: AuditLog, tmp_path: Path
) -> None:
    filled(log, 5)
    target = tmp_path / "siem" / "audit.jsonl"
    target.parent.mkdir()

    assert log.export(target) == 5
    lines = target.read_text(encoding="utf-8").splitlines()
    prev = GENESIS_HASH
    for seq, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert record["seq"] == seq and record["prev_hash"] == prev
        canonical = json.dumps(record["event"], sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)
        assert chain_hash(prev, canonical, seq) == record["hash"]
        prev = record["hash"]

    buffer = io.StringIO()
    assert log.export(buffer, after_seq=3) == 2
    assert [json.loads(x)["seq"] for x in buffer.getvalue().splitlines()] == [4, 5]


def test_when_queried_then_filters_and_paging_apply(log: AuditLog) -> None:
    for i in range(9):
        log.append(event(i, purpose="billing" if i % 2 else "fraud-detection",
                         action="export" if i == 4 else "read"))

    assert [s.seq for s in log.query(subject="user-1")] == [2, 5, 8]
    assert [s.seq for s in log.query(purpose="billing")] == [2, 4, 6, 8]
    assert [s.seq for s in log.query(action="export")] == [5]
    assert [s.seq for s in log.query(subject="user-1", purpose="billing")] == [2, 8]
    window = log.query(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6))
    assert [s.seq for s in window] == [4, 5, 6]
    assert [s.seq for s in log.query(limit=4)] == [1, 2, 3, 4]
    assert [s.seq for s in log.query(limit=4, after_seq=4)] == [5, 6, 7, 8]
    assert log.query(subject="nobody") == []

    stored = log.query(limit=1)[0]
    assert stored.event == event(0)
    assert stored.prev_hash == GENESIS_HASH and stored.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit must be"), ({"limit": 1001}, "limit must be"),
     ({"since": datetime(2025, 1, 1)}, "timezone-aware")],
)
def test_when_query_arguments_are_invalid_then_they_are_refused(
    log: AuditLog, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        log.query(**kwargs)
