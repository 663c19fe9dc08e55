"""`generate`: stream both datasets to part files, block by block, in bounded memory."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.datagen.canaries import CANARIES_FILE, Canaries, canaries_for, write_canaries
from gateway.datagen.context import Context
from gateway.datagen.customers import customer_block
from gateway.datagen.schema import (
    CUSTOMER_COLUMNS,
    CUSTOMER_TYPES,
    DATASETS,
    TRANSACTION_COLUMNS,
    TRANSACTION_TYPES,
    JsonKind,
    LogicalType,
    json_kind,
)
from gateway.datagen.transactions import transaction_block
from gateway.datagen.writer import (
    Format,
    PartFile,
    PartWriter,
    csv_header,
    render_csv,
    render_jsonl,
)
from gateway.errors import ValidationFailed

__all__ = ["GENERATOR_VERSION", "MANIFEST_FILE", "GenerateReport", "generate"]

GENERATOR_VERSION: Final = "1.0.0"
MANIFEST_FILE: Final = "manifest.json"
MAX_CUSTOMERS: Final = 999_999_999  # customer ids have nine digits

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class GenerateReport:
    """What `generate` wrote. Mappings are keyed by dataset (`customers`, `transactions`)."""

    out: Path
    seed: int
    fmt: Format
    paths: Mapping[str, tuple[Path, ...]]
    rows: Mapping[str, int]
    bad_rows: Mapping[str, int]
    bad_rows_by_kind: Mapping[str, Mapping[str, int]]
    canaries: Canaries  # dataset → column → planted values (also in canaries.json)
    manifest: Path
    seconds: Mapping[str, float] = field(compare=False)  # customers, transactions, pools, total

    @property
    def canary_values(self) -> tuple[str, ...]:
        """Every planted value, for scanning output."""
        return tuple(v for columns in self.canaries.values() for vs in columns.values() for v in vs)

    def rows_per_second(self, dataset: str) -> float:
        """Rows generated and written per second of time spent on `dataset`."""
        spent = self.seconds.get(dataset, 0.0)
        return self.rows[dataset] / spent if spent > 0 else float("inf")


_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "customers": CUSTOMER_COLUMNS,
    "transactions": TRANSACTION_COLUMNS,
}
_TYPES: Final[dict[str, dict[str, LogicalType]]] = {
    "customers": CUSTOMER_TYPES,
    "transactions": TRANSACTION_TYPES,
}


def _validate(
    rows: int,
    seed: int,
    bad_fraction: float,
    fmt: str,
    transactions_per_customer: float,
    chunk_rows: int,
) -> None:
    problems = []
    if not isinstance(rows, int) or not 0 <= rows <= MAX_CUSTOMERS:
        problems.append(f"rows must be an integer from 0 to {MAX_CUSTOMERS}")
    if not isinstance(seed, int) or seed < 0:
        problems.append("seed must be a non-negative integer")
    if not 0.0 <= bad_fraction <= 0.5:
        problems.append("bad_fraction must be between 0 and 0.5")
    if fmt not in ("csv", "jsonl"):
        problems.append("fmt must be 'csv' or 'jsonl'")
    if not 0.0 <= transactions_per_customer <= 1000.0:
        problems.append("transactions_per_customer must be between 0 and 1000")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        problems.append("chunk_rows must be a positive integer")
    if problems:
        raise ValidationFailed("; ".join(problems))


def _clear(directory: Path) -> None:
    """Remove part files of an earlier run so the folder holds exactly this run's parts."""
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in ("part-*.csv", "part-*.jsonl"):
        for stale in directory.glob(pattern):
            stale.unlink()


def _render(fmt: Format, dataset: str, text: dict[str, Any], as_string: dict[str, Any]) -> Any:
    columns = _COLUMNS[dataset]
    if fmt == "csv":
        return render_csv(text, columns)
    kinds: dict[str, JsonKind] = {c: json_kind(t) for c, t in _TYPES[dataset].items()}
    return render_jsonl(text, columns, kinds, as_string)


def generate(
    out: Path,
    rows: int,
    *,
    seed: int = 42,
    bad_fraction: float = 0.002,
    fmt: Format = "csv",
    transactions_per_customer: float = 5.0,
    chunk_rows: int = 50_000,
    progress: Progress | None = None,
) -> GenerateReport:
    """Write `rows` customers and about `rows * transactions_per_customer` transactions.

    Files: `out/customers/part-NNNNN.<fmt>`, `out/transactions/part-NNNNN.<fmt>` (at most
    `chunk_rows` rows each), `out/canaries.json` and `out/manifest.json`. The same arguments
    give byte-identical files; `chunk_rows` changes only how rows are split into parts.
    Part files of an earlier run in those folders are deleted first.
    `progress(dataset, rows_written_so_far)` is called after every block (10,000 customers
    and their transactions, fewer customers when `transactions_per_customer` exceeds 5).
    """
    _validate(rows, seed, bad_fraction, fmt, transactions_per_customer, chunk_rows)
    started = time.perf_counter()
    out = Path(out)
    for dataset in DATASETS:
        _clear(out / dataset)
    ctx = Context.create(seed, float(transactions_per_customer), float(bad_fraction))
    seconds: dict[str, float] = {
        "pools": time.perf_counter() - started,
        "customers": 0.0,
        "transactions": 0.0,
    }

    writers = {
        d: PartWriter(out / d, fmt, csv_header(_COLUMNS[d]) if fmt == "csv" else b"", chunk_rows)
        for d in DATASETS
    }
    counts: Counter[str] = Counter({d: 0 for d in DATASETS})
    bad: dict[str, Counter[str]] = {d: Counter() for d in DATASETS}
    block_rows = ctx.block_rows
    for block, start in enumerate(range(0, rows, block_rows)):
        tick = time.perf_counter()
        customers = customer_block(ctx, block, start, min(block_rows, rows - start))
        writers["customers"].write(_render(fmt, "customers", customers.text, customers.as_string))
        counts["customers"] += customers.rows
        bad["customers"] += customers.bad_kinds
        tock = time.perf_counter()
        seconds["customers"] += tock - tick
        if progress is not None:
            progress("customers", counts["customers"])

        tick = time.perf_counter()
        transactions = transaction_block(ctx, block, customers, counts["transactions"])
        del customers
        lines = _render(fmt, "transactions", transactions.text, transactions.as_string)
        writers["transactions"].write(lines)
        counts["transactions"] += transactions.rows
        bad["transactions"] += transactions.bad_kinds
        del transactions, lines
        seconds["transactions"] += time.perf_counter() - tick
        if progress is not None:
            progress("transactions", counts["transactions"])

    parts: dict[str, tuple[PartFile, ...]] = {d: writers[d].close() for d in DATASETS}
    canaries = canaries_for(rows)
    write_canaries(out, canaries)
    manifest = _write_manifest(
        out,
        {
            "seed": seed,
            "rows": rows,
            "format": fmt,
            "bad_fraction": bad_fraction,
            "transactions_per_customer": transactions_per_customer,
            "chunk_rows": chunk_rows,
        },
        counts,
        bad,
        parts,
    )
    seconds["total"] = time.perf_counter() - started
    return GenerateReport(
        out=out,
        seed=seed,
        fmt=fmt,
        paths={d: tuple(p.path for p in parts[d]) for d in DATASETS},
        rows=dict(counts),
        bad_rows={d: sum(bad[d].values()) for d in DATASETS},
        bad_rows_by_kind={d: dict(sorted(bad[d].items())) for d in DATASETS},
        canaries=canaries,
        manifest=manifest,
        seconds=dict(seconds),
    )


def _write_manifest(
    out: Path,
    parameters: dict[str, object],
    counts: Mapping[str, int],
    bad: Mapping[str, Counter[str]],
    parts: Mapping[str, tuple[PartFile, ...]],
) -> Path:
    from importlib.metadata import version

    manifest = {
        "generator": "gateway.datagen",
        "generator_version": GENERATOR_VERSION,
        "faker_version": version("faker"),
        **parameters,
        "counts": dict(counts),
        "bad_rows": {d: sum(bad[d].values()) for d in DATASETS},
        "bad_rows_by_kind": {d: dict(sorted(bad[d].items())) for d in DATASETS},
        "columns": {d: dict(_TYPES[d]) for d in DATASETS},
        "files": {
            d: [
                {
                    "path": p.path.relative_to(out).as_posix(),
                    "rows": p.rows,
                    "bytes": p.bytes,
                    "sha256": p.sha256,
                }
                for p in parts[d]
            ]
            for d in DATASETS
        },
        "canaries": CANARIES_FILE,
    }
    path = out / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
