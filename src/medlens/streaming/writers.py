"""Incremental, resumable result files: Parquet (numbered parts) and CSV (appended).

While a run is going, its rows live beside the target ``out``:

* ``results.parquet`` -> the folder ``results.parquet.partial/`` of complete Parquet files
  ``part-000000.parquet``, ``part-000001.parquet``... one per batch, each written to a
  temporary name and renamed, so after a kill every part is readable
  (``pandas.read_parquet("results.parquet.partial")`` reads them all). When every case is
  done the parts are copied, one row group each, into ``results.parquet`` (temporary file,
  then rename) and the folder is removed.
* ``results.csv`` -> ``results.csv.partial``, a CSV with its header, appended and flushed
  batch by batch; a line cut short by a kill is dropped on resume. Renamed to
  ``results.csv`` when every case is done.

Resuming (the default) reads the ``case_id`` column of the partial output — and of a
finished ``out``, which is moved back into the partial place first so that new files in
the inputs can be added to it — and those cases are not predicted again. Without resume
both are deleted and the run starts over.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from medlens.errors import InputError

PARTIAL = ".partial"


def _check_columns(path: Path, found: list[str], schema: pa.Schema) -> None:
    if found != schema.names:
        raise InputError(
            path,
            f"holds other columns ({', '.join(found)}) than this run's results "
            f"({', '.join(schema.names)}); choose another output or do not resume",
        )


class ParquetPartsWriter:
    """Rows written as numbered Parquet parts in ``<out>.partial/``, joined at the end.

    Args:
        out: the final ``.parquet`` file.
        schema: the columns (``result_schema``).
        resume: keep (and skip) the cases already written; else start over.
    """

    def __init__(self, out: Path, schema: pa.Schema, resume: bool) -> None:
        self.out = out
        self.schema = schema
        self.parts = out.with_name(out.name + PARTIAL)
        if self.parts.is_dir() and out.is_file():
            # Only a kill between the final rename and the folder's removal leaves both;
            # the final file then holds every part.
            shutil.rmtree(self.parts)
        if not resume:
            shutil.rmtree(self.parts, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                out.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        for stray in self.parts.glob(".*.tmp"):  # a part being written when killed
            stray.unlink()
        if out.is_file():
            os.replace(out, self._part_path(self._next_index()))
        self._index = self._next_index()

    def _part_path(self, index: int) -> Path:
        return self.parts / f"part-{index:06d}.parquet"

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def _next_index(self) -> int:
        files = self._part_files()
        return int(files[-1].stem.split("-")[1]) + 1 if files else 0

    def done_case_ids(self) -> set[str]:
        """The case ids already written (by an earlier, interrupted or finished, run)."""
        done: set[str] = set()
        for part in self._part_files():
            try:
                _check_columns(part, pq.read_schema(part).names, self.schema)
                done.update(pq.read_table(part, columns=["case_id"]).column(0).to_pylist())
            except pa.ArrowException as exc:
                raise InputError(part, f"unreadable partial result ({exc})") from None
        return done

    def write(self, table: pa.Table) -> None:
        """Write one batch as a complete part file (temporary name, then rename)."""
        path = self._part_path(self._index)
        tmp = self.parts / f".{path.name}.tmp"
        pq.write_table(table.cast(self.schema), tmp)
        os.replace(tmp, path)
        self._index += 1

    def finalize(self) -> Path:
        """Join the parts into ``out`` (one row group per part) and remove the folder."""
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        with pq.ParquetWriter(tmp, self.schema) as writer:
            for part in self._part_files():
                writer.write_table(pq.read_table(part).cast(self.schema))
        os.replace(tmp, self.out)
        shutil.rmtree(self.parts)
        return self.out


class CsvAppendWriter:
    """Rows appended (and flushed) batch by batch to ``<out>.partial``, renamed at the end.

    Args:
        out: the final ``.csv`` file.
        schema: the columns (``result_schema``).
        resume: keep (and skip) the cases already written; else start over.
    """

    def __init__(self, out: Path, schema: pa.Schema, resume: bool) -> None:
        self.out = out
        self.schema = schema
        self.partial = out.with_name(out.name + PARTIAL)
        if not resume:
            for path in (self.partial, out):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        elif out.is_file() and not self.partial.is_file():
            os.replace(out, self.partial)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.is_file():
            self._drop_cut_line()
        if not self.partial.is_file() or self.partial.stat().st_size == 0:
            self._append(self.schema.empty_table(), header=True)

    def _drop_cut_line(self) -> None:
        with open(self.partial, "rb+") as handle:
            data_end = handle.seek(0, os.SEEK_END)
            if data_end == 0:
                return
            # Look back from the end for the last newline; whatever follows it is a line
            # that a kill cut short.
            step = 1 << 16
            pos = data_end
            while pos > 0:
                start = max(0, pos - step)
                handle.seek(start)
                chunk = handle.read(pos - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    handle.truncate(start + cut + 1)
                    return
                pos = start
            handle.truncate(0)

    def _append(self, table: pa.Table, header: bool = False) -> None:
        options = pacsv.WriteOptions(include_header=header)
        with open(self.partial, "ab") as handle:
            pacsv.write_csv(table.cast(self.schema), handle, options)
            handle.flush()

    def done_case_ids(self) -> set[str]:
        """The case ids already written (by an earlier, interrupted or finished, run)."""
        with open(self.partial, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        _check_columns(self.partial, header, self.schema)
        try:
            table = pacsv.read_csv(
                self.partial,
                convert_options=pacsv.ConvertOptions(
                    column_types={"case_id": pa.string()}, include_columns=["case_id"]
                ),
            )
        except pa.ArrowException as exc:
            raise InputError(self.partial, f"unreadable partial result ({exc})") from None
        return set(table.column(0).to_pylist())

    def write(self, table: pa.Table) -> None:
        """Append one batch of rows and flush it to the file."""
        self._append(table)

    def finalize(self) -> Path:
        """Rename the complete file into place."""
        os.replace(self.partial, self.out)
        return self.out


ResultWriter = ParquetPartsWriter | CsvAppendWriter


def open_result_writer(out: str | Path, schema: pa.Schema, resume: bool = True) -> ResultWriter:
    """The writer for ``out``: ``.parquet`` (numbered parts) or ``.csv`` (appended).

    Raises:
        InputError: another suffix, or a partial output from a run with other columns.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        return ParquetPartsWriter(out, schema, resume)
    if suffix == ".csv":
        return CsvAppendWriter(out, schema, resume)
    raise InputError(out, "the output must end in .parquet or .csv")
