"""The I/O floor for ingest: the fastest plain read of every raw file with pyarrow / DuckDB, no mapping.

Each file declared in params/sources.yaml is read once (a file that feeds two sources, e.g. the web
orders for customers and order lines, is read once here, as ingest also parses it once per run):

- CSV: ``pyarrow.csv.read_csv`` with the declared encoding and delimiter (ragged rows skipped);
- JSON lines and JSON arrays: DuckDB ``read_json`` (``ignore_errors=true``): ``pyarrow.json`` stops at
  the sample's broken lines and at a field whose type changes between records (a defect on purpose);
- Excel: no Arrow or DuckDB reader without an extension download, so ``python-calamine`` (Rust), the
  sheet's cell values as Python lists (what ingest's pandas reader uses underneath, minus the
  DataFrame); ``openpyxl`` in read-only mode when calamine is not installed;
- SQLite: the declared query with the standard library's ``sqlite3`` (``fetchall``): DuckDB's sqlite
  extension would have to be downloaded;
- Parquet: ``pyarrow.parquet.read_table``.

Prints one line ``RESULT {json}`` with per-file seconds, rows and bytes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path


def _csv(path: Path, encoding: str | None, delimiter: str) -> tuple[int, str]:
    import pyarrow.csv as pv

    read = pv.ReadOptions(encoding=encoding or "utf8")
    parse = pv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, invalid_row_handler=lambda row: "skip"
    )
    table = pv.read_csv(path, read_options=read, parse_options=parse)
    return table.num_rows, "pyarrow.csv"


def _duckdb_json(path: Path, fmt: str) -> tuple[int, str]:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.sql(f"SELECT * FROM read_json('{path}', format='{fmt}', ignore_errors=true)")
        return rel.to_arrow_table().num_rows, f"duckdb.read_json({fmt})"
    finally:
        con.close()


def _excel(path: Path, sheet: str | int | None) -> tuple[int, str]:
    try:
        from python_calamine import CalamineWorkbook
    except ImportError:
        return _excel_openpyxl(path, sheet)
    book = CalamineWorkbook.from_path(str(path))
    try:
        ws = book.get_sheet_by_name(sheet) if isinstance(sheet, str) else book.get_sheet_by_index(sheet or 0)
        rows = len(ws.to_python(skip_empty_area=False)) - 1  # header
    finally:
        book.close()
    return rows, "python-calamine"


def _excel_openpyxl(path: Path, sheet: str | int | None) -> tuple[int, str]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = book[sheet] if isinstance(sheet, str) else book.worksheets[sheet or 0]
        rows = sum(1 for _ in ws.iter_rows(values_only=True)) - 1  # header
    finally:
        book.close()
    return rows, "openpyxl(read_only)"


def _sqlite(path: Path, query: str) -> tuple[int, str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = len(con.execute(query).fetchall())
    finally:
        con.close()
    return rows, "sqlite3.fetchall"


def _parquet(path: Path) -> tuple[int, str]:
    import pyarrow.parquet as pq

    return pq.read_table(path).num_rows, "pyarrow.parquet"


def _warm_up() -> None:
    """Import the readers before the clock starts (imports are not I/O)."""
    import duckdb
    import openpyxl  # noqa: F401

    try:
        import python_calamine  # noqa: F401
    except ImportError:
        pass
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    duckdb.connect().sql("SELECT 1").fetchall()


def read_floor(root: Path) -> dict:
    """Read every raw file of the project at `root` once; per-file and total seconds."""
    from helpers.config import expand_env, load_settings, load_sources

    _warm_up()
    settings = load_settings(root=root)
    raw = settings.path("raw")
    sources = load_sources(root=settings.root)
    files: dict[str, dict] = {}
    readers_per_file: dict[str, list[str]] = {}
    for spec in sources.values():
        if spec.format == "sql":
            url = expand_env(spec.url or "", {"SCV_RAW_DIR": str(raw)})
            if not url.startswith("sqlite:///"):
                continue  # a real database server: no file to read
            key = str(Path(url.removeprefix("sqlite:///")).relative_to(raw))
        else:
            key = spec.path or ""
        readers_per_file.setdefault(key, []).append(spec.name)
        if key in files:
            continue
        path = raw / key
        t0 = time.perf_counter()
        if spec.format == "csv":
            rows, engine = _csv(path, spec.encoding, spec.delimiter)
        elif spec.format == "jsonl":
            rows, engine = _duckdb_json(path, "newline_delimited")
        elif spec.format == "json":
            rows, engine = _duckdb_json(path, "array")
        elif spec.format == "excel":
            rows, engine = _excel(path, spec.sheet)
        elif spec.format == "sql":
            rows, engine = _sqlite(path, spec.query or "")
        else:
            rows, engine = _parquet(path)
        files[key] = {
            "seconds": round(time.perf_counter() - t0, 4),
            "rows": int(rows),
            "bytes": path.stat().st_size,
            "engine": engine,
        }
    for key, names in readers_per_file.items():
        files[key]["sources"] = names
    total = sum(f["seconds"] for f in files.values())
    per_source = sum(f["seconds"] * len(f["sources"]) for f in files.values())
    return {
        "seconds": round(total, 4),
        "seconds_per_source": round(per_source, 4),
        "rows": sum(f["rows"] for f in files.values()),
        "bytes": sum(f["bytes"] for f in files.values()),
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Read every raw file once with pyarrow/DuckDB (the I/O floor)."
    )
    parser.add_argument("--root", type=Path, required=True, help="project folder (params/, data/raw/)")
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(read_floor(args.root.resolve())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
