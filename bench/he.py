"""Benchmark privacy.he against the same operations written directly with TenSEAL, and numpy.

    python bench/he.py [--values N] [--entities M] [--features F] [--repeats R]

Operations (default parameters: CKKS, N=8192, coefficient modulus 60+40+40+60, scale 2^40):
- encrypt: one column of N values (default 1,000,000) into serialized ciphertexts;
- sum: the encrypted sum of that column (load, add slot-wise, rotate-and-sum, serialize);
- scores: an F-feature (default 16) linear score w.x + b for M entities (default 10,000).

"ours" is privacy.he (encrypt_column, HeEvaluator.sum, HeEvaluator.linear_scores, each with
its checks and, for results, a signed envelope); "tenseal" is the same work written directly
against TenSEAL; "numpy" is the plaintext computation. Each timing is taken after a warm-up,
`--repeats` times (ours and tenseal interleaved, alternating order), and reported as the median
with the min-max spread. The overhead target is ours/tenseal <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from privacy.he import (
    HeEvaluator,
    HeParams,
    decrypt,
    encrypt_column,
    estimate,
    generate_keys,
    generate_signing_key,
    verify_key_bytes,
)

TARGET = 1.15


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def timed2(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, cpu) seconds. TenSEAL runs these operations on one thread, so CPU time is the
    cost without the noise of other processes on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def summary(times: list[float]) -> str:
    med = statistics.median(times)
    spread = (max(times) - min(times)) / med * 100 if med else 0.0
    return f"{fmt(med):>10s}  (min {fmt(min(times))}, max {fmt(max(times))}, ±{spread / 2:.1f}%)"


def numpy_time(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall timings of a fast plaintext operation (looped to >= 50 ms per sample)."""

    def run(loops: int) -> float:
        return timed(lambda: [fn() for _ in range(loops)])[0] / loops

    loops = 1
    while run(loops) * loops < 0.05:
        loops *= 2
    return [run(loops) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--values", type=int, default=1_000_000, help="values in the encrypted column"
    )
    parser.add_argument("--entities", type=int, default=10_000, help="entities scored")
    parser.add_argument("--features", type=int, default=16, help="features per linear score")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of encrypt (>= 3)")
    parser.add_argument(
        "--fast-repeats", type=int, default=15, help="timed repeats of sum and scores (>= 3)"
    )
    args = parser.parse_args()
    if min(args.repeats, args.fast_repeats) < 3:
        parser.error("repeats must be at least 3")

    import tenseal as ts

    params = HeParams()
    print(
        f"python {platform.python_version()}, tenseal {ts.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} cpus, {platform.machine()}"
    )
    print(
        f"params: {params.scheme}, N={params.poly_modulus_degree}, "
        f"coeff={list(params.coeff_mod_bit_sizes)}, scale=2^{params.global_scale_bits}, "
        f"{params.slots} slots/ciphertext"
    )
    print(
        f"values={args.values:,} entities={args.entities:,} features={args.features} "
        f"repeats={args.repeats} (encrypt), {args.fast_repeats} (sum, scores)"
    )

    keygen, pair = timed(lambda: generate_keys(params, "bench"))
    public, secret = pair.public_context(), pair.secret_context()
    signer = generate_signing_key()
    evaluator = HeEvaluator(public, signer)
    ctx = public.context
    slots = public.info.slots
    print(
        f"keygen {keygen:.2f} s; public context {len(pair.public_bytes) / 1e6:.1f} MB "
        f"(rotation keys for {slots.bit_length() - 1} steps, no relinearisation keys), "
        f"secret context {len(pair.secret_bytes) / 1e6:.2f} MB"
    )

    rng = np.random.default_rng(1)
    values = rng.uniform(0, 500_000, args.values)
    matrix = rng.normal(0, 1, (args.features, args.entities)) * rng.uniform(
        1, 1_000, (args.features, 1)
    )
    weights = rng.normal(0, 0.01, args.features)
    bias = 0.5
    entity_rows = list(range(args.entities))

    # -- the same operations, directly with TenSEAL ----------------------------------------
    def tenseal_encrypt(column: np.ndarray) -> list[bytes]:
        buffer = np.zeros(slots)
        out = []
        for start in range(0, column.size, slots):
            part = column[start : start + slots]
            buffer[: part.size] = part
            buffer[part.size :] = 0.0  # pad: TenSEAL would replicate a short vector
            out.append(ts.ckks_vector(ctx, buffer.tolist()).serialize())
        return out

    def tenseal_sum(chunks: list[bytes]) -> bytes:
        total = ts.ckks_vector_from(ctx, chunks[0])
        for blob in chunks[1:]:
            total.add_(ts.ckks_vector_from(ctx, blob))
        return total.sum().serialize()  # type: ignore[no-any-return]

    def tenseal_scores(columns: list[list[bytes]]) -> list[bytes]:
        out = []
        for chunk in range(len(columns[0])):
            score = None
            for wj, column in zip(weights, columns, strict=True):
                vector = ts.ckks_vector_from(ctx, column[chunk])
                vector.mul_(float(wj))
                score = vector if score is None else score.add_(vector)
            assert score is not None
            score.add_(bias)
            out.append(score.serialize())
        return out

    # -- ours --------------------------------------------------------------------------------
    guess = estimate(args.values, 1, params)
    feature_columns = [encrypt_column(f"f{j}", matrix[j], public) for j in range(args.features)]
    raw_features = [list(c.chunks) for c in feature_columns]

    # warm-up: each path once (encryption on a tenth of the values)
    warm = values[: max(args.values // 10, 1)]
    encrypt_column("warm", warm, public)
    tenseal_encrypt(warm)
    column = encrypt_column("income", values, public)
    raw_chunks = list(column.chunks)
    evaluator.sum(column)
    tenseal_sum(raw_chunks)
    evaluator.linear_scores(feature_columns, weights.tolist(), bias, entity_rows)
    tenseal_scores(raw_features)

    wall: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "encrypt": (
            lambda: encrypt_column("income", values, public),
            lambda: tenseal_encrypt(values),
        ),
        "sum": (lambda: evaluator.sum(column), lambda: tenseal_sum(raw_chunks)),
        "scores": (
            lambda: evaluator.linear_scores(feature_columns, weights.tolist(), bias, entity_rows),
            lambda: tenseal_scores(raw_features),
        ),
    }
    for name, (ours, direct) in cases.items():
        wall[name] = {"ours": [], "tenseal": []}
        cpu[name] = {"ours": [], "tenseal": []}
        repeats = args.repeats if name == "encrypt" else args.fast_repeats
        for repeat in range(repeats):
            order = [("ours", ours), ("tenseal", direct)]
            for label, fn in order if repeat % 2 == 0 else order[::-1]:
                w, c = timed2(fn)
                wall[name][label].append(w)
                cpu[name][label].append(c)
    wall["sum"]["numpy"] = numpy_time(lambda: values.sum(), args.fast_repeats)
    wall["scores"]["numpy"] = numpy_time(lambda: weights @ matrix + bias, args.fast_repeats)

    # -- correctness of what was timed -------------------------------------------------------
    key = verify_key_bytes(signer)
    total = decrypt(evaluator.sum(column), secret, key, params.min_rows)
    unrounded = decrypt(
        evaluator.sum(column), secret, key, params.min_rows, significant_digits=None
    )
    scores = np.asarray(
        decrypt(
            evaluator.linear_scores(feature_columns, weights.tolist(), bias, entity_rows),
            secret,
            key,
            1,
        )
    )
    expected = weights @ matrix + bias
    sum_error = abs(float(total) - float(values.sum())) / float(values.sum())
    raw_error = abs(float(unrounded) - float(values.sum())) / float(values.sum())
    score_error = float(np.max(np.abs(scores - expected)))

    # -- report ----------------------------------------------------------------------------
    med = statistics.median
    print()
    print("wall clock, median (min, max, ± half-spread):")
    for name in cases:
        for label in ("ours", "tenseal", "numpy"):
            if label in wall[name]:
                print(f"  {name:8s} {label:8s} {summary(wall[name][label])}")
    print("CPU time, median (min, max, ± half-spread):")
    for name in cases:
        for label in ("ours", "tenseal"):
            print(f"  {name:8s} {label:8s} {summary(cpu[name][label])}")
    print()
    for name in cases:
        by_wall = med(wall[name]["ours"]) / med(wall[name]["tenseal"])
        by_cpu = med(cpu[name]["ours"]) / med(cpu[name]["tenseal"])
        verdict = "ok" if by_cpu <= TARGET else "ABOVE TARGET"
        line = (
            f"{name:8s} overhead ours/tenseal: cpu {by_cpu:.3f}, wall {by_wall:.3f} "
            f"(target <= {TARGET}: {verdict})"
        )
        if "numpy" in wall[name]:
            line += (
                f"; slowdown vs numpy {med(wall[name]['ours']) / med(wall[name]['numpy']):,.0f}x"
            )
        print(line)
    encrypt_s = med(wall["encrypt"]["ours"])
    print(f"encrypt  throughput = {args.values / encrypt_s:,.0f} values/s (single thread)")
    print()
    print(
        f"ciphertexts: {len(column.chunks)} x ~{column.nbytes / len(column.chunks):,.0f} B = "
        f"{column.nbytes / 1e6:.1f} MB for {args.values:,} values -> "
        f"{column.nbytes / args.values:.1f} bytes/value (plaintext float64: 8)"
    )
    print(
        f"estimate before encrypting: {guess.ciphertexts} ciphertexts, {guess.bytes / 1e6:.1f} MB "
        f"({(guess.bytes / column.nbytes - 1) * 100:+.2f}% vs actual)"
    )
    print(
        f"accuracy: sum relative error {sum_error:.1e} as released (10 significant digits), "
        f"{raw_error:.1e} unrounded; scores max |error| {score_error:.1e}"
    )


if __name__ == "__main__":
    main()
