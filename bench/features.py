"""Benchmark: online features through the gateway vs `feast serve` vs in-process Feast; and
materialisation rows/s into SQLite and Redis.

    python bench/features.py [--entities 20000] [--requests 2000] [--concurrency 16]
                             [--repeats 3] [--rows 1000000] [--skip-online] [--skip-materialize]
                             [--redis redis://127.0.0.1:6379/0]

Online: each request asks 10 features of 100 random entities of one feature view
(`bench_profile`, 10 double features). The three targets read the same SQLite online store
and registry: the gateway's POST /v1/features/online (API key, purpose and acknowledgement,
authorisation per view, an audit record per request) in a uvicorn server in this process;
Feast's own HTTP feature server (`feast serve`, one worker, a subprocess on loopback); and
`FeatureStore.get_online_features` called in process from the same number of threads.
Prints requests/s, p50, p99 and the ratios (target p99 gateway/feast-serve <= 1.25).

Materialisation: `--rows` rows x 10 features of a Delta table into SQLite (Feast's own
SqliteOnlineStore, and the bulk writer `feature_store.online.BulkSqliteOnlineStore`) and
into Redis, each through `FeatureStore.materialize` with `online_write_batch_size`.
Feast's own SQLite writer is measured on at most 200,000 rows (it is slow; rows/s is flat).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench._common import machine  # noqa: E402

FEATURES = [f"f{i}" for i in range(10)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

ORG = (REPO / "examples" / "policies" / "org.yaml").read_text()
DATASET = """
dataset: bench_customers
source: {format: parquet, path: bench}
entity: customer_id
event_time: updated_at
purposes: [fraud-detection]
columns:
  customer_id: {type: string, classification: internal, protect: keep}
  updated_at: {type: timestamp, classification: internal, protect: keep}
COLUMNS
features:
  bench_profile:
    columns: [NAMES]
    approved_for: [fraud-detection]
    ttl: 3650d
""".replace(
    "COLUMNS",
    "\n".join(
        f"  {f}: {{type: double, classification: internal, protect: keep}}" for f in FEATURES
    ),
).replace("NAMES", ", ".join(FEATURES))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _frame(rows: int, entities: int, start: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7 + start)
    cols: dict[str, Any] = {
        "customer_id": [f"tok_{i % entities:08d}" for i in range(start, start + rows)],
        "updated_at": pd.to_datetime(T0, utc=True)
        + pd.to_timedelta(np.arange(start, start + rows), unit="s"),
    }
    for f in FEATURES:
        cols[f] = rng.random(rows)
    frame = pd.DataFrame(cols)
    frame["updated_at"] = frame["updated_at"].astype("datetime64[us, UTC]")
    return frame


def _write_table(path: Path, rows: int, entities: int) -> None:
    from deltalake import write_deltalake

    chunk = 250_000
    for start in range(0, rows, chunk):
        write_deltalake(str(path), _frame(min(chunk, rows - start), entities, start), mode="append")


def _load(
    call: Callable[[list[str]], None],
    ids: list[str],
    count: int,
    concurrency: int,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per = max(1, count // concurrency)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = []
        for _ in range(per):
            batch = rng.sample(ids, 100)
            started = time.perf_counter()
            call(batch)
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return per * concurrency / (time.perf_counter() - started), latencies


def _http_caller(
    url: str,
    headers: dict[str, str],
    body: Callable[[list[str]], dict[str, Any]],
) -> Callable[[list[str]], None]:
    local = threading.local()

    def call(batch: list[str]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60)
        response = client.post(url, json=body(batch), headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")

    return call


def online(args: argparse.Namespace) -> None:
    import uvicorn

    from feature_store.store import GovernedFeatureStore
    from gateway.api.app import create_app
    from gateway.api.routers.features import router
    from gateway.features import build_publication, store_config
    from gateway.ingest.job import LakePaths
    from gateway.services import build_services
    from gateway.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="bench-features-"))
    policies = home / "policies"
    policies.mkdir()
    (policies / "org.yaml").write_text(ORG)
    (policies / "bench.yaml").write_text(DATASET)
    settings = Settings(home=home, policy_paths=(policies,))
    services = build_services(settings)
    table = LakePaths(settings.lake).governed("bench_customers", "fraud-detection")
    _write_table(table, args.entities, args.entities)
    pub, refusals = build_publication(services.policies, settings, check_tables=False)
    assert not refusals, refusals
    store = GovernedFeatureStore(store_config(settings))
    store.apply(pub)
    report = store.materialize()
    yaml_dir = store.write_yaml().parent
    print(f"online store: {report.rows} entities materialised in {report.seconds:.1f}s")

    key = services.api_keys.create("bob", ["fraud-analyst"], policies=services.policies).secret
    headers = {"Authorization": f"Bearer {key}", "X-Purpose": "fraud-detection"}
    app = create_app(services)
    app.include_router(router)
    gport, fport = _free_port(), _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=gport, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    feast_proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "feast"),
            "--chdir",
            str(yaml_dir),
            "serve",
            "-h",
            "127.0.0.1",
            "-p",
            str(fport),
            "--no-access-log",
            "-w",
            "1",
            "--max-requests",
            "1000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{gport}"
        httpx.post(
            f"{base}/v1/purposes/fraud-detection/acknowledge", headers=headers
        ).raise_for_status()
        feast_url = f"http://127.0.0.1:{fport}"
        for _ in range(600):
            try:
                if httpx.get(f"{feast_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        ids = [f"tok_{i:08d}" for i in range(args.entities)]
        view = pub.views[0].name
        gateway_call = _http_caller(
            f"{base}/v1/features/online",
            headers,
            lambda b: {
                "entities": {"customer_id": b},
                "features": [f"bench_profile:{f}" for f in FEATURES],
            },
        )
        feast_call = _http_caller(
            f"{feast_url}/get-online-features",
            {},
            lambda b: {
                "entities": {"customer_id": b},
                "features": [f"{view}:{f}" for f in FEATURES],
                "full_feature_names": True,
            },
        )
        fs = store.feast
        refs = [f"{view}:{f}" for f in FEATURES]

        def inprocess_call(batch: list[str]) -> None:
            fs.get_online_features(
                features=refs, entity_rows={"customer_id": batch}, full_feature_names=True
            ).to_dict()

        targets = {"gateway": gateway_call, "feast-serve": feast_call, "in-process": inprocess_call}
        for call in targets.values():  # warm-up
            _load(call, ids, 200, args.concurrency)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
        for _ in range(args.repeats):
            for name, call in targets.items():
                rps, lat = _load(call, ids, args.requests, args.concurrency)
                results[name].append((rps, _percentile(lat, 0.5), _percentile(lat, 0.99)))
    finally:
        server.should_exit = True
        feast_proc.terminate()
        feast_proc.wait(timeout=30)
        thread.join(timeout=10)
        store.close()
        services.close()
    print(
        f"online: 10 features x 100 entities per request, {args.requests} requests x "
        f"{args.repeats} repeats, concurrency {args.concurrency}, {args.entities} entities; "
        + machine()
    )
    for name, rows in results.items():
        rps = statistics.median(r[0] for r in rows)
        p50 = statistics.median(r[1] for r in rows) * 1000
        p99 = statistics.median(r[2] for r in rows) * 1000
        print(f"  {name:11s} {rps:8.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    for other in ("feast-serve", "in-process"):
        ratios = [g[2] / b[2] for g, b in zip(results["gateway"], results[other], strict=True)]
        rps = [g[0] / b[0] for g, b in zip(results["gateway"], results[other], strict=True)]
        print(
            f"  gateway/{other}: p99 ratio {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}), "
            f"req/s ratio {statistics.median(rps):.2f}"
        )
    print("  target: p99 gateway/feast-serve <= 1.25")


def materialize(args: argparse.Namespace) -> None:
    from feature_store import FeatureSpec, Publication, StoreConfig, ViewSpec
    from feature_store.store import GovernedFeatureStore

    home = Path(tempfile.mkdtemp(prefix="bench-materialize-"))
    table = home / "governed"
    started = time.perf_counter()
    _write_table(table, args.rows, args.rows)
    print(
        f"materialise: wrote {args.rows:,} rows x 10 features to Delta in "
        f"{time.perf_counter() - started:.1f}s; " + machine()
    )
    spec = ViewSpec(
        dataset="bench",
        view="wide",
        purpose="bench",
        entity="customer_id",
        source_path=str(table),
        timestamp_field="updated_at",
        features=tuple(
            FeatureSpec(name=f, kind="double", classification="internal", protection="keep")
            for f in FEATURES
        ),
        ttl_seconds=3650 * 86400,
        policy_version="bench",
    )
    pub = Publication(policy_version="bench", views=(spec,))
    targets: list[tuple[str, dict[str, Any], int, bool]] = [
        ("sqlite (Feast SqliteOnlineStore)", {}, min(args.rows, 200_000), False),
        ("sqlite (bulk writer)", {}, args.rows, True),
    ]
    if args.redis:
        targets.append((f"redis ({args.redis})", {"online_store": args.redis}, args.rows, True))
    for label, extra, rows, bulk in targets:
        project = "bench" + uuid.uuid4().hex[:8]
        store = GovernedFeatureStore(StoreConfig(root=home / project, project=project, **extra))
        if not bulk:
            from feast import FeatureStore

            store._fs = FeatureStore(config=store.repo_config(bulk_sqlite=False))
        store.apply(pub)
        end = T0 + timedelta(seconds=rows)  # rows are one second apart: the first `rows` rows
        try:
            report = store.materialize(end=end, start=T0 - timedelta(seconds=1))
            print(
                f"  {label:40s} {report.rows:>10,} rows in {report.seconds:7.1f}s = "
                f"{report.rows / report.seconds:9,.0f} rows/s"
            )
        finally:
            store.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--skip-materialize", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not args.skip_online:
        online(args)
    if not args.skip_materialize:
        materialize(args)


if __name__ == "__main__":
    main()
