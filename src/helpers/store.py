"""I/O in one place: Parquet files under data/processed/<period>/ and the DuckDB store.

Every write is atomic: files are written to a temporary name in the same folder and renamed, and
store tables are replaced inside a transaction, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # imported where a store is opened: a process that only reads Parquet saves ~30 MB
    import duckdb


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    The temporary file is flushed to disk before the rename, and the rename itself after it, so that
    a power cut (not only a killed process) leaves the old file or the new one, never an empty one.
    A crash leaves the hidden temporary (`.<name>.*.tmp`) behind, never under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            _fsync(tmp_path)
        os.replace(tmp_path, target)
        _fsync(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's) contents to disk; a no-op where the OS cannot open folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_parquet(df: pd.DataFrame, target: Path) -> Path:
    """Write a frame to Parquet atomically (no index)."""
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(target)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns)


def write_json(data: Any, target: Path) -> Path:
    """Write JSON atomically, pretty-printed and key-sorted (stable diffs)."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return Path(target)


def write_csv(df: pd.DataFrame, target: Path) -> Path:
    """Write CSV atomically, escaping cells that a spreadsheet would run as a formula."""
    with atomic_path(target) as tmp:
        escape_formulas(df).to_csv(tmp, index=False)
    return Path(target)


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells (and column names) starting with = + - @ (or tab/CR) with a quote (OWASP CSV
    injection); categorical columns are text too."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            text = s.astype("string")
            risky = text.str.match(r"^[=+\-@\t\r]", na=False)
            # a plain negative number is data, not a formula
            numeric = text.str.fullmatch(r"-?\d+([.,]\d+)?", na=False)
            mask = risky & ~numeric
            if mask.any():
                if isinstance(s.dtype, pd.CategoricalDtype):
                    out[col] = s = s.astype(object)
                out.loc[mask, col] = "'" + s[mask].astype(str)
    out.columns = [_escape_name(c) for c in out.columns]
    return out


def _escape_name(name: object) -> object:
    """A column name made from data (a campaign or product as a pivot column) can carry a formula too."""
    if isinstance(name, str) and name[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + name
    return name


def period_dir(processed: Path, period: str) -> Path:
    return Path(processed) / period


#: How long `connect` waits for another process's hold on the store file (stages run side by side).
LOCK_WAIT_SECONDS = 120.0


def _open(store: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, retried while another process holds the file's lock.

    DuckDB lets one process write a database file, or several read it, never both at once. Every
    helper here holds a connection only for one read or one transaction, so a stage that finds the
    store busy (quality and metrics run side by side) waits a moment instead of failing.
    """
    import duckdb

    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(store), read_only=read_only and store.exists())
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@contextmanager
def connect(store: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB store (created on first use), waiting up to LOCK_WAIT_SECONDS for a lock."""
    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    con = _open(store, read_only, LOCK_WAIT_SECONDS)
    try:
        yield con
    finally:
        con.close()


def save_table(store: Path, name: str, df: pd.DataFrame, *, period: str | None = None) -> int:
    """Replace the rows of `period` in table `name` (or the whole table when period is None).

    Tables keyed by period accumulate one slice per period, so a trend across months is one query.
    The delete and insert happen in one transaction: readers see the old slice or the new one.
    """
    frame = _typed_for_store(df)
    if period is not None:
        frame.insert(0, "period", pd.Series(period, index=frame.index, dtype="string"))
    with connect(store) as con:
        con.register("frame", frame)
        con.execute("BEGIN TRANSACTION")
        try:
            exists = bool(
                con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
                ).fetchall()[0][0]
            )
            if exists and period is not None:
                cols = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
                if cols != list(frame.columns):
                    # the table's shape changed (a new version of a stage): keep other periods' rows
                    old = con.execute(f'SELECT * FROM "{name}" WHERE period <> ?', [period]).df()
                    con.execute(f'DROP TABLE "{name}"')
                    con.register("old", old)
                    con.execute(
                        f'CREATE TABLE "{name}" AS SELECT * FROM frame UNION ALL BY NAME SELECT * FROM old'
                    )
                else:
                    con.execute(f'DELETE FROM "{name}" WHERE period = ?', [period])
                    con.execute(f'INSERT INTO "{name}" SELECT * FROM frame')
            else:
                con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM frame')
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return len(frame)


def _typed_for_store(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose all-null object columns are text: DuckDB would otherwise type them NULL, and a
    table created from an empty frame could never take rows later."""
    frame = df.copy()
    for col in frame.columns:
        if frame[col].dtype == object and frame[col].isna().all():
            frame[col] = frame[col].astype("string")
    return frame


def load_table(store: Path, name: str, *, period: str | None = None) -> pd.DataFrame:
    """Read a store table (one period's slice when `period` is given); empty frame if absent."""
    if not Path(store).exists():
        return pd.DataFrame()
    with connect(store, read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchall()
        if not exists[0][0]:
            return pd.DataFrame()
        if period is None:
            return con.execute(f'SELECT * FROM "{name}"').df()
        return con.execute(f'SELECT * FROM "{name}" WHERE period = ?', [period]).df()


def query(store: Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run a read-only SQL query against the store."""
    with connect(store, read_only=True) as con:
        return con.execute(sql, params or []).df()
