"""Where `unify.link` spends memory, step by step, and a prototype of Arrow-backed staged strings.

Benchmark-only experiment (wraps the unify functions here, changes nothing in the product). Needs a
work folder whose ingest stage has run for the period:

    .venv/bin/python benchmarks/experiments/unify_memory.py benchmarks/work/1m 2026-10 python
    .venv/bin/python benchmarks/experiments/unify_memory.py benchmarks/work/1m 2026-10 arrow

``python``: the staged parties as `ingest.load_staged` returns them (string[python] columns);
``arrow``: the same Parquet files read with string columns as string[pyarrow].
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path


def main(root: Path, period: str, mode: str) -> None:
    os.environ["SCV_ROOT"] = str(root)
    import pandas as pd
    import psutil

    from helpers import ingest, unify, unify_io
    from helpers.config import load_settings, load_sources

    proc = psutil.Process()

    def mark(label: str) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:<34} rss {proc.memory_info().rss / 2**20:7.0f} MiB   peak {peak:7.0f} MiB", flush=True)

    mark("imports")
    settings = load_settings(root=root)
    sources = load_sources(root=root)
    if mode == "arrow":
        import pyarrow as pa
        import pyarrow.parquet as pq

        staged = settings.path("processed") / period / "staged"
        mapper = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}.get
        frames = [
            pq.read_table(staged / f"{name}.parquet").to_pandas(types_mapper=mapper)
            for name, spec in sources.items()
            if spec.kind == "party" and (staged / f"{name}.parquet").exists()
        ]
        parties = pd.concat(frames, ignore_index=True)
    else:
        parties = ingest.load_staged(settings.path("processed"), period, sources, "party")
    mark(f"staged parties ({len(parties):,} rows, {parties.memory_usage(deep=True).sum() / 2**20:.0f} MiB)")
    for name in ("source_records", "prepare", "candidate_pairs", "compare", "fit_model", "_pair_frame", "cluster",
                 "assign_ids", "golden_records", "review_queue"):  # fmt: skip
        original = getattr(unify, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            t0 = time.perf_counter()
            out = _original(*args, **kwargs)
            mark(f"{_name} ({time.perf_counter() - t0:.1f} s)")
            return out

        setattr(unify, name, wrapped)
    trust = {name: spec.trust_rank for name, spec in sources.items() if spec.kind == "party"}
    t0 = time.perf_counter()
    result = unify.link(parties, unify.UnifySettings(**settings.unify), trust_ranks=trust)
    seconds = time.perf_counter() - t0
    mark("link done")
    acc = unify_io.accuracy(result, settings.path("truth") / "records.csv")
    print(
        f"{mode}: link {seconds:.1f} s, candidate pairs {result.stats['candidate_pairs']:,}, "
        f"pair F1 {acc['pair_f1']:.4f}, cluster F1 {acc['cluster_f1']:.4f}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "python")
