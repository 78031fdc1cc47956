"""Link the benchmark's party records with Splink 5 (DuckDB backend), as a yardstick for `helpers.unify`.

Three subcommands, run in two different interpreters by `benchmarks/run.py`:

``prepare`` (the project's .venv): the staged party records of a period -> one record per (source,
source_id) (`unify.source_records`) -> the linkage keys of `helpers.linkage.prepare` (the same
normalisation and blocking keys as ours) -> one Parquet table with ``unique_id`` = our record id.

``link`` (benchmarks/.venv-splink, which has Splink): Splink's recommended workflow on that table —
``SettingsCreator`` with comparisons from its library, one blocking rule per exact blocking pass of ours, ``estimate_probability_two_random_records_match`` from deterministic rules,
``estimate_u_using_random_sampling``, two EM sessions, ``predict`` (every blocked pair, to measure
blocking recall) and connected components at p >= the threshold. Writes the scored pairs and the
clusters to Parquet and prints one JSON line with timings and counts.

``ours`` (the project's .venv): `helpers.unify.link` on the same staged party records in a bare
process like Splink's (no kernel, no notebook, no outputs written), timed and measured the same way,
for an equal comparison of time and memory.

The evaluation (``unify.evaluate`` against data/sample_truth/records.csv) is done by run.py in the
project's .venv, so both linkers are scored by the same code.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

#: Input columns: our normalised values (comparisons) and blocking keys, "" -> NULL.
KEY_COLUMNS = [
    "given",
    "given_phonetic",
    "given_initial",
    "family_name_1",
    "family_1_phonetic",
    "family_name_2",
    "family_2_phonetic",
    "surnames_phonetic",
    "org_name",
    "org_phonetic",
    "tax_id",
    "email",
    "email_local",
    "phone",
    "iban",
    "postcode",
    "address",
]

#: Blocking: one key column per exact blocking pass of params/default.yaml (`unify.blocking`), made by
#: `prepare` with our own key code (`linkage._combined_key`) and our block-size caps (a block larger
#: than the pass's max_block_size is left out, as our blocking skips it: NULL key). Splink blocks on
#: each column (`block_on("b_<pass>")`), so both linkers get the same candidate blocks, except our two
#: sorted-neighbourhood passes, which Splink has no equivalent for. Splink cannot cap a block itself:
#: with the same keys uncapped it scores ~18 M pairs at 1M source records instead of ~1.5 M.
BLOCK_PREFIX = "b_"
#: Deterministic rules for the prior (Splink: "designed to admit very few false positives").
DETERMINISTIC_RULES: list[tuple[str, ...]] = [("tax_id",), ("email",), ("iban",)]
DETERMINISTIC_RECALL = 0.7
#: EM sessions (each estimates m of the comparisons not in its rule).
EM_RULES: list[tuple[str, ...]] = [("tax_id",), ("email",)]
U_MAX_PAIRS = 1e7


def peak_rss_bytes() -> int:
    """This process's peak RSS so far (ru_maxrss is in KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ----------------------------------------------------------------------------------------- prepare
def prepare(root: Path, period: str, out: Path) -> dict:
    """Write the party source records with our linkage keys to `out` (Parquet); returns counts."""
    import numpy as np
    import pandas as pd

    from helpers import ingest, linkage, unify
    from helpers.config import load_settings, load_sources

    t0 = time.perf_counter()
    settings = load_settings(overrides={"period": period}, root=root)
    sources = load_sources(root=settings.root)
    parties = ingest.load_staged(settings.path("processed"), period, sources, "party")
    records = unify.source_records(parties)
    prep = linkage.prepare(records)
    codes = prep.codes
    frame = pd.DataFrame(
        {
            "unique_id": np.arange(len(records), dtype=np.int64),
            "source": records["source"].astype(str).to_numpy(),
            "source_id": records["source_id"].astype(str).to_numpy(),
        }
    )
    for key in KEY_COLUMNS:
        vocab = prep.vocab[linkage.KEY_GROUPS[key]]
        code = codes[key].to_numpy()
        values = np.where(code >= 0, vocab[np.maximum(code, 0)] if len(vocab) else "", None)
        frame[key] = pd.array(np.where(values == "", None, values), dtype="string")
    link_settings = unify.UnifySettings(**settings.unify)
    blocking = []
    for spec in link_settings.blocking:
        if spec.method != "exact":
            continue
        key = linkage._combined_key(codes, spec.keys)
        cap = spec.max_block_size or link_settings.max_block_size
        sizes = np.bincount(key[key >= 0]) if (key >= 0).any() else np.zeros(0, dtype=np.int64)
        valid = key >= 0
        valid[valid] = sizes[key[valid]] <= cap
        column = pd.array(key, dtype="Int64")
        column[~valid] = pd.NA
        frame[BLOCK_PREFIX + spec.name] = column
        blocking.append({"pass": spec.name, "keys": spec.keys, "max_block_size": cap})
    birth = codes["birth_date"].to_numpy()
    iso = pd.Series(birth.astype(str))
    iso = iso.str[:4] + "-" + iso.str[4:6] + "-" + iso.str[6:8]
    frame["birth_date"] = pd.array(np.where(birth > 0, iso.to_numpy(), None), dtype="string")
    frame["party"] = codes["party"].to_numpy().astype(np.int8)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return {
        "parties_rows": int(len(parties)),
        "source_records": int(len(frame)),
        "blocking": blocking,
        "seconds": round(time.perf_counter() - t0, 3),
    }


# -------------------------------------------------------------------------------------------- ours
def ours(root: Path, period: str) -> dict:
    """`unify.link` in this bare process: seconds and peak RSS right after it, then its accuracy."""
    from helpers import unify, unify_io
    from helpers.config import load_settings, load_sources

    settings = load_settings(overrides={"period": period}, root=root)
    sources = load_sources(root=settings.root)
    link_settings = unify.UnifySettings(**settings.unify)
    trust_ranks = {name: spec.trust_rank for name, spec in sources.items() if spec.kind == "party"}
    t0 = time.perf_counter()
    staged = [unify_io.load_parties(settings.path("processed"), period, sources)]  # as the unify notebook
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    # hand the rows over (no reference kept here): link frees them once it has built the source records
    result = unify.link(staged.pop(), link_settings, trust_ranks=trust_ranks)
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    by_step = result.stats.get("peak_rss_mib") or {}
    accuracy = unify_io.accuracy(result, settings.path("truth") / "records.csv")
    return {
        "tool": "ours",
        "records": int(len(result.records)),
        "candidate_pairs": int(result.stats["candidate_pairs"]),
        "matched_pairs": int(result.stats["matched_pairs"]),
        "seconds": round(seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "timings": result.timings,
        "linkage_peak_rss_bytes": peak,
        # the peak up to the clusters: the work Splink's run does (pairs -> scores -> clusters), before
        # our golden records, provenance and review queue
        "clusters_peak_rss_bytes": int(by_step["cluster"]) * 2**20 if "cluster" in by_step else None,
        "peak_rss_mib_by_step": by_step,
        "accuracy": {k: round(float(v), 6) for k, v in accuracy.items()},
    }


# -------------------------------------------------------------------------------------------- link
def settings_creator(block_columns: list[str]):
    """Splink's settings: its comparison library on our normalised fields, our blocking keys."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("given").configure(term_frequency_adjustments=True),
            cl.NameComparison("family_name_1").configure(term_frequency_adjustments=True),
            cl.NameComparison("family_name_2").configure(term_frequency_adjustments=True),
            cl.JaroWinklerAtThresholds("org_name", [0.9, 0.75]).configure(term_frequency_adjustments=True),
            cl.ExactMatch("tax_id"),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
            cl.ExactMatch("iban"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.LevenshteinAtThresholds("postcode", [1]),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.75]).configure(term_frequency_adjustments=True),
            cl.ExactMatch("party"),
        ],
        blocking_rules_to_generate_predictions=[block_on(c) for c in block_columns],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def link(input_path: Path, out_dir: Path, threshold: float, seed: int = 42) -> dict:
    """Train and run Splink on `input_path`; write pairs.parquet and clusters.parquet to `out_dir`."""
    import logging

    import duckdb
    import pyarrow.parquet as pq
    import splink
    from splink import DuckDBAPI, Linker, block_on

    logging.getLogger("splink").setLevel(logging.WARNING)
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(step: str) -> None:
        now = time.perf_counter()
        timings[step] = round(now - clock[0], 3)
        clock[0] = now

    started = clock[0]
    table = pq.read_table(input_path)
    block_columns = [c for c in table.column_names if c.startswith(BLOCK_PREFIX)]
    con = duckdb.connect()
    db_api = DuckDBAPI(con)
    records = db_api.register(table, dataset_display_name="parties")
    linker = Linker(records, settings_creator(block_columns), log_level=logging.WARNING)
    done("load")
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in DETERMINISTIC_RULES], recall=DETERMINISTIC_RECALL
    )
    done("prior")
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=seed)
    done("estimate u")
    for rule in EM_RULES:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    done("EM")
    predictions = linker.inference.predict()  # every blocked pair (for blocking recall); threshold below
    done("predict")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    )
    done("cluster")
    seconds = round(time.perf_counter() - started, 3)
    peak = peak_rss_bytes()
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs_file, clusters_file = out_dir / "pairs.parquet", out_dir / "clusters.parquet"
    con.execute(
        f"COPY (SELECT unique_id_l, unique_id_r, match_probability FROM {predictions.physical_name}) "
        f"TO '{pairs_file}' (FORMAT parquet)"
    )
    con.execute(
        f"COPY (SELECT unique_id, cluster_id FROM {clusters.physical_name}) TO '{clusters_file}' (FORMAT parquet)"
    )
    counts = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE match_probability >= {threshold}) "
        f"FROM {predictions.physical_name}"
    ).fetchall()[0]
    return {
        "tool": "splink",
        "splink": splink.__version__,
        "duckdb": duckdb.__version__,
        "records": int(table.num_rows),
        "candidate_pairs": int(counts[0]),
        "matched_pairs": int(counts[1]),
        "threshold": threshold,
        "seconds": seconds,
        "timings": timings,
        "linkage_peak_rss_bytes": peak,
        "blocking_rules": block_columns,
        "em_rules": [list(r) for r in EM_RULES],
        "u_max_pairs": U_MAX_PAIRS,
        "pairs_file": str(pairs_file),
        "clusters_file": str(clusters_file),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the party records with our linkage keys (project .venv)")
    p.add_argument("--root", type=Path, required=True, help="project folder (params/, data/)")
    p.add_argument("--period", required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("ours", help="run helpers.unify.link in a bare process (project .venv)")
    p.add_argument("--root", type=Path, required=True, help="project folder (params/, data/)")
    p.add_argument("--period", required=True)
    p = sub.add_parser("link", help="run Splink on the prepared records (Splink venv)")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        result = prepare(args.root, args.period, args.out)
    elif args.command == "ours":
        result = ours(args.root, args.period)
    else:
        result = link(args.input, args.out_dir, args.threshold)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
