"""Prototype behind a proposed ingest fix: read each raw file once per run (benchmark-only experiment).

Two sources often share a raw file (web orders -> customers and order lines; support tickets -> contacts
and tickets; surveys; social). Ingest parses such a file once per source. This script times
`ingest.ingest_all` as it is, and with the parse of a shared file memoised (monkeypatched here, not in
the product), on a benchmark work folder whose sample exists:

    .venv/bin/python benchmarks/experiments/ingest_read_once.py benchmarks/work/1m base
    .venv/bin/python benchmarks/experiments/ingest_read_once.py benchmarks/work/1m once
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path


def main(root: Path, mode: str) -> None:
    os.environ["SCV_ROOT"] = str(root)
    from helpers import ingest, readers
    from helpers.config import load_settings, load_sources

    settings = load_settings(root=root)
    sources = load_sources(root=root)
    if mode == "once":
        for name in ("read_excel", "_json_records"):
            original = getattr(readers, name)
            cache: dict = {}

            def memo(*args, _original=original, _cache=cache, **kwargs):
                key = (str(args[0]), getattr(args[1], "sheet", None))
                if key not in _cache:
                    _cache[key] = _original(*args, **kwargs)
                hit = _cache[key]
                if isinstance(
                    hit, tuple
                ):  # _json_records: (objects, rows, malformed); objects are not mutated
                    return list(hit[0]), list(hit[1]), hit[2].copy()
                return dataclasses.replace(hit, records=hit.records.copy(), malformed=hit.malformed.copy())

            setattr(readers, name, memo)
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = ingest.ingest_all(sources, settings.path("raw"), settings.ingest, progress=False)
    print(
        f"{mode}: ingest_all {time.perf_counter() - t0:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU; "
        f"rows read {sum(r.rows_read for r in results.values()):,}, "
        f"staged {sum(len(r.staged) for r in results.values()):,}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) > 2 else "base")
