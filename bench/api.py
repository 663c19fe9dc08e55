"""Benchmark: an authorised GET /v1/datasets against the same payload with no governance.

    python bench/api.py [--requests 3000] [--concurrency 16] [--repeats 3]

Both routes run in one uvicorn server on loopback, in the same process and the same run:
the gateway's route (API key lookup, purpose and acknowledgement check, authorisation,
an audit record per call) and a baseline route defined here that returns the identical
JSON body with no identity, authorisation or audit. Requests alternate between the two so
machine noise hits both. Prints requests/s, p50 and p99 per route and the p99 ratio
(target gateway/baseline <= 1.3).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.api.app import create_app  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings import Settings  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load(
    url: str, headers: dict[str, str], count: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            local = []
            for _ in range(n):
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                local.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{url} answered {response.status_code}: {response.text[:200]}"
                    )
            with lock:
                latencies.extend(local)

    per = max(1, count // concurrency)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, [per] * concurrency))
    return per * concurrency / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    services = build_services(Settings(home=home, policy_paths=(REPO / "examples" / "policies",)))
    key = services.api_keys.create("bob", ["fraud-analyst"], policies=services.policies).secret
    app = create_app(services)
    headers = {"Authorization": f"Bearer {key}", "X-Purpose": "fraud-detection"}
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    httpx.post(
        f"{base}/v1/purposes/fraud-detection/acknowledge", headers=headers
    ).raise_for_status()
    payload = httpx.get(f"{base}/v1/datasets", headers=headers).json()

    @app.get("/bench/baseline")
    def baseline() -> JSONResponse:  # the same body, no identity, authorisation or audit
        return JSONResponse(payload)

    _load(f"{base}/v1/datasets", headers, 200, args.concurrency)  # warm-up
    _load(f"{base}/bench/baseline", {}, 200, args.concurrency)
    results: dict[str, list[tuple[float, float, float]]] = {"gateway": [], "baseline": []}
    for _ in range(args.repeats):
        for name, url, hdrs in (
            ("gateway", "/v1/datasets", headers),
            ("baseline", "/bench/baseline", {}),
        ):
            rps, lat = _load(base + url, hdrs, args.requests, args.concurrency)
            results[name].append((rps, _percentile(lat, 0.5), _percentile(lat, 0.99)))
    server.should_exit = True
    thread.join(timeout=10)
    services.close()

    print(
        f"GET /v1/datasets, {args.requests} requests x {args.repeats} repeats, "
        f"concurrency {args.concurrency}"
    )
    for name, rows in results.items():
        rps = statistics.median(r[0] for r in rows)
        p50 = statistics.median(r[1] for r in rows) * 1000
        p99 = statistics.median(r[2] for r in rows) * 1000
        print(f"  {name:9s} {rps:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    ratios = [g[2] / b[2] for g, b in zip(results["gateway"], results["baseline"], strict=True)]
    print(
        f"  p99 ratio gateway/baseline: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target <= 1.3"
    )


if __name__ == "__main__":
    main()
