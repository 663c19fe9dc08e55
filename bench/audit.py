"""Benchmark: hash-chained audit appends vs plain appends to the same store, same batching.

    python bench/audit.py [--events N] [--url URL] [--threads T] [--repeats R]

Producer threads call `AuditLog.append` (each blocks until its event is durably committed;
the log's writer thread group-commits what is queued). The baseline is the same AuditLog
with the chaining step replaced: no lock, no read of the chain head, no SHA-256. Both run
interleaved (alternating which goes first) on fresh tables of the same database, after a
warm-up; events are built before timing. Default: a temporary SQLite file (WAL,
synchronous=FULL, as the gateway runs it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gateway.audit import AppendedEvent, AuditEvent, AuditLog
from gateway.db import create_database_engine
from gateway.errors import StorageError


class PlainLog(AuditLog):
    """The same table, queue and group commit, without hashing or chaining."""

    _counter = itertools.count(1)  # one process writes: a local counter gives unique seqs

    def _chain(self, conn: Any, batch: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows: list[dict[str, Any]] = []
        results = []
        for request in batch:
            out = []
            for row in request.rows:
                seq = next(self._counter)
                row.update(seq=seq, prev_hash="0" * 64, hash="0" * 64, created_at=created)
                out.append(AppendedEvent(seq, ""))
            rows.extend(request.rows)
            results.append(out)
        return rows, results


def _events(count: int) -> list[AuditEvent]:
    return [
        AuditEvent(kind="decision", subject=f"user-{i % 50}", roles=["analyst"],
                   purpose="fraud-detection", action="read", resource="dataset:customers",
                   decision="allow", rule="analysts-read-masked", reason="role analyst",
                   policy_version="v7", request_id=f"req-{i}",
                   released={"rows": i, "features": ["age_band", "region"], "epsilon": 0.5})
        for i in range(count)
    ]


def _run(log: AuditLog, events: list[AuditEvent], threads: int) -> tuple[float, float]:
    """(events/s, CPU µs per event) with `threads` producers sharing `events`."""
    parts = [events[t::threads] for t in range(threads)]
    start = threading.Barrier(threads + 1)

    failures: list[Exception] = []

    def produce(part: list[AuditEvent]) -> None:
        start.wait()
        try:
            for event in part:
                log.append(event)
        except StorageError as exc:
            failures.append(exc)

    workers = [threading.Thread(target=produce, args=(part,)) for part in parts]
    for worker in workers:
        worker.start()
    start.wait()
    began, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    if failures:
        raise SystemExit(f"{len(failures)} producers failed: {failures[0]}")
    return len(events) / elapsed, cpu / len(events) * 1e6


def _measure(engine: Engine, cls: type[AuditLog], table: str, events: list[AuditEvent],
             threads: int) -> tuple[float, float, float]:
    """(events/s, CPU µs per event, events per commit) on a fresh table, dropped after."""
    with cls(engine, table_name=table) as log:
        rate, cpu = _run(log, events, threads)
        if cls is AuditLog and not log.verify().ok:
            raise SystemExit("chain does not verify")
    with engine.begin() as conn:
        commits = conn.execute(text(f"SELECT COUNT(DISTINCT created_at) FROM {table}")).scalar()
        conn.execute(text(f"DROP TABLE {table}"))
    return rate, cpu, len(events) / (commits or 1)


def _spread(values: list[float]) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"median {mid:,.0f}  (min {low:,.0f}, max {high:,.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per timed run")
    parser.add_argument("--url", default=None, help="database URL (default: temporary SQLite)")
    parser.add_argument("--threads", type=int, default=64, help="producer threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_database_engine(url)
        events = _events(args.events)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"audit bench: {engine.dialect.name} ({url.split('@')[-1]}), {args.events} events"
              f" x {args.repeats} repeats, {args.threads} producer threads; Python "
              f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
              f"{os.cpu_count()} CPUs, load {load:.1f}")
        tag = f"{os.getpid()}"
        _measure(engine, PlainLog, f"bench_warm_plain_{tag}", events[:2000], args.threads)
        _measure(engine, AuditLog, f"bench_warm_chain_{tag}", events[:2000], args.threads)
        chained, plain, ratio, cpu = [], [], [], []
        for i in range(args.repeats):
            order = [(PlainLog, "plain"), (AuditLog, "chain")][:: 1 if i % 2 else -1]
            got = {name: _measure(engine, cls, f"bench_{name}_{tag}_{i}", events, args.threads)
                   for cls, name in order}  # alternate which variant runs first
            (p, pcpu, pb), (c, ccpu, cb) = got["plain"], got["chain"]
            plain.append(p)
            chained.append(c)
            ratio.append(c / p)
            cpu.append(ccpu - pcpu)
            print(f"  run {i + 1}: chained {c:,.0f}/s ({cb:.0f}/commit, {ccpu:.0f} µs CPU/event)"
                  f"  plain {p:,.0f}/s ({pb:.0f}/commit, {pcpu:.0f} µs CPU/event)"
                  f"  ratio {c / p:.2f}")
        engine.dispose()
    print(f"chained events/s: {_spread(chained)}")
    print(f"plain   events/s: {_spread(plain)}")
    print(f"ratio chained/plain: median {statistics.median(ratio):.2f} "
          f"(min {min(ratio):.2f}, max {max(ratio):.2f})")
    print(f"chaining CPU cost: median {statistics.median(cpu):+.0f} µs per event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
