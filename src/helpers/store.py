"""I/O in one place: Parquet files under data/processed/<period>/ and the DuckDB store.

Every write is atomic: files are written to a temporary name in the same folder and renamed, and
store tables are replaced inside a transaction, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600: a manifest the index links must be readable
    try:
        yield tmp_path
        if tmp_path.is_file():
            _fsync(tmp_path)
        os.replace(tmp_path, target)
        _fsync(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty hidden folder beside `target`; if the block succeeds, it takes `target`'s place
    in one step, so a reader (or a run killed half-way) sees the old folder or the new one, never a
    mix of old and new files.

    The swap is one `renameat2(RENAME_EXCHANGE)` on Linux; where that is not available, two renames
    back to back (the old folder moves aside, the new one into place). A crash leaves the hidden
    `.<name>.*.tmp` folder behind (the runner sweeps stale ones), never a half-written `target`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        _fsync(tmp)
        if target.exists():
            _exchange(tmp, target)  # tmp now holds the old folder
        else:
            os.rename(tmp, target)
        _fsync(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE), else with two renames."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    aside = b.with_name(f".{b.name}.{os.getpid()}.old.tmp")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: setting it, even for a moment, races with other threads' files


def _umask() -> int:
    return _UMASK


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


def unescape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Undo `escape_formulas` on a frame read back from one of the product's CSV exports: a text cell
    (or column name) that is a quote followed by = + - @ (or tab/CR) loses the quote. An analyst who
    copies rows of the review queue into params/link_decisions.csv gets "@ana_lopez" back, not
    "'@ana_lopez" (a social handle that would match no record)."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            text = s.astype("string")
            escaped = text.str.match(r"^'[=+\-@\t\r]", na=False)
            if escaped.any():
                out.loc[escaped, col] = text[escaped].str.slice(1).astype(object)
    out.columns = [c[1:] if isinstance(c, str) and re.match(r"^'[=+\-@\t\r]", c) else c for c in out.columns]
    return out


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV the product exported (or an analyst edited from one), as text, with the formula escaping
    undone (`unescape_formulas`); empty cells are None."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return unescape_formulas(frame).replace({"": None})


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

    Columns are stored with plain types (`plain_types`): a pandas categorical would become a DuckDB
    ENUM of today's values, and next month's new value could not be inserted. A table whose column
    types differ from the frame's (an ENUM left by an older version, an integer column that now
    holds decimals) is rebuilt with the wider type, keeping the other periods' rows: an INSERT would
    cast the new values to the old type (2.5 into BIGINT silently becomes 2).
    """
    return save_tables(store, {name: df}, period=period)[name]


def save_tables(store: Path, frames: dict[str, pd.DataFrame], *, period: str | None = None) -> dict[str, int]:
    """`save_table` for several tables in one transaction: a stage's tables change together or not at
    all (a run killed in the middle of a stage's writes leaves the store as it was)."""
    prepared = {}
    for name, df in frames.items():
        frame = plain_types(df)
        if period is not None:
            frame.insert(0, "period", pd.Series(period, index=frame.index, dtype="string"))
        prepared[name] = frame
    with connect(store) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, frame in prepared.items():
                _replace_slice(con, name, frame, period)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return {name: len(frame) for name, frame in prepared.items()}


def _replace_slice(
    con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, period: str | None
) -> None:
    con.register("frame", frame)
    try:
        exists = _table_exists(con, name)
        if exists and period is not None:
            _migrate_enums(con, name)
            source = _fitted(con, name, frame)
            both = f'(SELECT * FROM "{name}" UNION ALL BY NAME {source})'
            if _column_types(con, f'"{name}"') == _column_types(con, both):
                # every column of the frame fits the table's column of its name as it is
                con.execute(f'DELETE FROM "{name}" WHERE period = ?', [period])
                con.execute(f'INSERT INTO "{name}" BY NAME {source}')
            else:
                # a new column, or a type the table's cannot hold (decimals in an integer column):
                # rebuilt with the other periods' rows, each column in the wider type
                con.execute(
                    f'CREATE TABLE "{name}__new" AS {source} '
                    f'UNION ALL BY NAME SELECT * FROM "{name}" WHERE period <> ?',
                    [period],
                )
                con.execute(f'DROP TABLE "{name}"')
                con.execute(f'ALTER TABLE "{name}__new" RENAME TO "{name}"')
        else:
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM frame')
    finally:
        con.unregister("frame")


def _fitted(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> str:
    """SELECT the frame so that a column with no value on one side takes the other side's type.

    A period with nothing in a column (no split clusters this month) says nothing about its type: the
    frame's all-null column takes the table's type, and a table column that is null in every row (it
    was created from such a period) takes the frame's type. Otherwise a month with numbers after a
    month without would store the numbers as text, and an empty month would turn the table's numbers
    into text.
    """
    table = dict(_column_types(con, f'"{name}"'))
    columns = []
    for column, kind in _column_types(con, "frame"):
        quoted = '"' + column.replace('"', '""') + '"'
        old = table.get(column)
        if old is not None and old != kind:
            if frame[column].isna().all():
                columns.append(f"CAST({quoted} AS {old}) AS {quoted}")
                continue
            if not con.execute(f'SELECT count({quoted}) FROM "{name}"').fetchall()[0][0]:
                con.execute(f'ALTER TABLE "{name}" ALTER COLUMN {quoted} TYPE {kind}')
        columns.append(quoted)
    return f"SELECT {', '.join(columns)} FROM frame"


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[
            0
        ][0]
    )


def _column_types(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _migrate_enums(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    """Turn the ENUM columns of table `name` into VARCHAR (an older version stored categoricals as
    ENUMs of the values of their first period); returns the columns changed."""
    changed = []
    for column, kind in _column_types(con, f'"{name}"'):
        if kind.startswith("ENUM("):
            quoted = column.replace('"', '""')
            con.execute(f'ALTER TABLE "{name}" ALTER COLUMN "{quoted}" TYPE VARCHAR')
            changed.append(column)
    return changed


def migrate(store: Path) -> dict[str, list[str]]:
    """Give every table of an existing store plain column types (ENUM -> VARCHAR), in one transaction;
    returns {table: columns changed}. Called at the start of each run (a store made by an older version)."""
    if not Path(store).exists():
        return {}
    with connect(store, read_only=True) as con:
        enums = con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE data_type LIKE 'ENUM(%'"
        ).fetchall()[0][0]
    if not enums:
        return {}
    changed: dict[str, list[str]] = {}
    with connect(store) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            tables = [
                r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            ]
            for table in tables:
                columns = _migrate_enums(con, table)
                if columns:
                    changed[table] = columns
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return changed


def plain_types(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose columns DuckDB stores with plain, open types.

    - a categorical becomes the type of its categories (text as a string column): DuckDB would make it
      an ENUM that refuses any value it did not hold when the table was created;
    - periods and intervals become text; other pandas extension types (nullable integers, booleans,
      strings, Arrow-backed columns) are plain DuckDB types already;
    - an all-null object column becomes text: DuckDB would otherwise type it NULL, and a table created
      from an empty frame could never take rows later.
    """
    frame = df.copy()
    for col in frame.columns:
        s = frame[col]
        dtype = s.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            categories = dtype.categories
            if pd.api.types.is_string_dtype(categories.dtype) or pd.api.types.is_object_dtype(
                categories.dtype
            ):
                frame[col] = s.astype(object).astype("string")
            elif pd.api.types.is_bool_dtype(categories.dtype):
                frame[col] = s.astype(object).astype("boolean")
            elif pd.api.types.is_integer_dtype(categories.dtype):
                frame[col] = s.astype(object).astype("Int64")
            elif pd.api.types.is_float_dtype(categories.dtype):
                frame[col] = s.astype("float64")
            elif pd.api.types.is_datetime64_any_dtype(categories.dtype):
                frame[col] = pd.Series(pd.DatetimeIndex(s.astype(object)), index=s.index)
            else:  # periods, intervals, mixed objects: their text
                frame[col] = s.astype(object).map(lambda v: None if pd.isna(v) else str(v)).astype("string")
        elif isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype):
            frame[col] = s.astype(object).map(lambda v: None if pd.isna(v) else str(v)).astype("string")
        elif pd.api.types.is_object_dtype(dtype) and s.isna().all():
            frame[col] = s.astype("string")
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


def load_latest_before(store: Path, name: str, period: str) -> pd.DataFrame:
    """The slice of table `name` for the latest period strictly before `period` (with its `period`
    column); an empty frame when there is none.

    What a stage may learn from the past: never the slice of its own period, which only an earlier
    run of the same period could have written (a re-run would then differ from the first run).
    """
    if not Path(store).exists():
        return pd.DataFrame()
    with connect(store, read_only=True) as con:
        if not _table_exists(con, name):
            return pd.DataFrame()
        return con.execute(
            f'SELECT * FROM "{name}" WHERE period = (SELECT max(period) FROM "{name}" WHERE period < ?)',
            [period],
        ).df()


def query(store: Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run a read-only SQL query against the store."""
    with connect(store, read_only=True) as con:
        return con.execute(sql, params or []).df()
