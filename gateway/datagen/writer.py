"""Rendering text columns as CSV or JSON lines, and writing them as rolling part files.

Rendering is vectorised with Arrow kernels; the result of a block is one string array with
one line per row, whose contiguous data buffer is written to disk as is and then dropped.

CSV follows RFC 4180 as Python's `csv` module writes it with `QUOTE_MINIMAL` and `\\n` line
endings: a field is quoted only if it contains a comma, a quote or a line break, quotes are
doubled, an empty field is missing (also read as null by Spark). Every part starts with the
header row. JSON lines hold one object per row, keys in column order, numbers and booleans
unquoted, missing values `null`, and the wrong-typed values of bad rows as strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from gateway.datagen.schema import JsonKind
from gateway.datagen.text import Mask, mask_array

__all__ = ["Format", "PartFile", "PartWriter", "csv_header", "render_csv", "render_jsonl"]

Format = Literal["csv", "jsonl"]
_NEEDS_QUOTES: Final = r'[,"\r\n]'


def _data(column: Any) -> bytes:
    """The bytes of all values of a string array (cheap: one copy, no per-row work)."""
    if len(column) == 0:
        return b""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    first, last = int(offsets[column.offset]), int(offsets[column.offset + len(column)])
    return bytes(memoryview(column.buffers()[2])[first:last])


def _quote_csv(column: Any) -> Any:
    text = pc.fill_null(column, "")
    data = _data(text)
    has_quote = b'"' in data
    if not (has_quote or b"," in data or b"\n" in data or b"\r" in data):
        return text  # the common case: memchr over the block instead of a regex per row
    needs = pc.match_substring_regex(text, _NEEDS_QUOTES)
    escaped = pc.replace_substring(text, '"', '""') if has_quote else text
    quoted = pc.binary_join_element_wise(pa.scalar('"'), escaped, pa.scalar('"'), "")
    return pc.if_else(needs, quoted, text)


def _lines(fields: list[Any], separator: str, end: str) -> Any:
    joined = pc.binary_join_element_wise(*fields, separator)
    return pc.binary_join_element_wise(joined, pa.scalar(end), "")


def csv_header(columns: Iterable[str]) -> bytes:
    return (",".join(columns) + "\n").encode("utf-8")


def render_csv(text: dict[str, Any], columns: tuple[str, ...]) -> Any:
    """One CSV line (with its `\\n`) per row."""
    return _lines([_quote_csv(text[c]) for c in columns], ",", "\n")


def _json_string(column: Any) -> Any:
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise(pa.scalar('"'), escaped, pa.scalar('"'), "")


def render_jsonl(
    text: dict[str, Any],
    columns: tuple[str, ...],
    kinds: dict[str, JsonKind],
    as_string: dict[str, Mask],
) -> Any:
    """One JSON object line (with its `\\n`) per row."""
    fields: list[Any] = []
    for i, column in enumerate(columns):
        values = text[column]
        if kinds[column] == "string":
            rendered = _json_string(values)
        elif column in as_string and as_string[column].any():
            rendered = pc.if_else(mask_array(as_string[column]), _json_string(values), values)
        else:
            rendered = values
        key = ("{" if i == 0 else ",") + json.dumps(column) + ":"
        fields += [pa.scalar(key), pc.fill_null(rendered, "null")]
    return _lines(fields, "", "}\n")


@dataclass(frozen=True)
class PartFile:
    path: Path
    rows: int
    bytes: int
    sha256: str


class PartWriter:
    """Writes lines to `part-00000.<ext>`, `part-00001.<ext>`, … of at most `chunk_rows` rows."""

    def __init__(self, directory: Path, fmt: Format, header: bytes, chunk_rows: int) -> None:
        self._directory = directory
        self._suffix = fmt
        self._header = header
        self._chunk_rows = chunk_rows
        self._parts: list[PartFile] = []
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._rows = 0
        self._bytes = 0
        self._hash = hashlib.sha256()

    def write(self, lines: Any) -> None:
        position, total = 0, len(lines)
        while position < total:
            if self._file is None or self._rows == self._chunk_rows:
                self._roll()
            count = min(self._chunk_rows - self._rows, total - position)
            self._emit(lines.slice(position, count))
            self._rows += count
            position += count

    def close(self) -> tuple[PartFile, ...]:
        """Finish the last part (an empty dataset still gets one part, with its header)."""
        if self._file is None and not self._parts:
            self._roll()
        self._finish()
        return tuple(self._parts)

    def _roll(self) -> None:
        self._finish()
        self._path = self._directory / f"part-{len(self._parts):05d}.{self._suffix}"
        self._file = self._path.open("wb")
        self._rows = 0
        self._bytes = 0
        self._hash = hashlib.sha256()
        self._raw(self._header)

    def _finish(self) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._parts.append(PartFile(self._path, self._rows, self._bytes, self._hash.hexdigest()))
        self._file = None

    def _emit(self, lines: Any) -> None:
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
        first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
        self._raw(memoryview(lines.buffers()[2])[first:last])

    def _raw(self, data: bytes | memoryview) -> None:
        if not data or self._file is None:
            return
        self._file.write(data)
        self._hash.update(data)
        self._bytes += len(data)
