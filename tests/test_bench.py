"""The benchmark harness (benchmarks/run.py): its measuring, growth arithmetic, targets and reports.

Fast tests use synthetic results and tiny child processes; the one that runs the harness end to end
on a tiny sample (ingest + unify, no Splink) is marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


bench = _load("bench_run", ROOT / "benchmarks" / "run.py")
io_floor = _load("bench_io_floor", ROOT / "benchmarks" / "io_floor.py")


def _scale(label: str, n: int, secs: dict[str, float], *, f1: float = 0.99, rss: int = 10**9) -> dict:
    steps = [
        {"step": s, "status": "ok", "wall_s": secs[s], "notebook_s": secs[s] - 4, "peak_rss_bytes": rss,
         "max_process_rss_bytes": rss, "tree_peak_rss_bytes": rss, "rows_in": n, "rows_out": n // 2}
        for s in bench.PIPELINE_STEPS if s in secs
    ]  # fmt: skip
    scale = {
        "scale": label, "records_target": n, "source_records": int(n * 1.04), "period": "2026-10",
        "sample": {"status": "ok", "wall_s": 1.0, "peak_rss_bytes": 1},
        "io_floor": {"status": "ok", "seconds": secs.get("io_floor", 0.1), "rows": n, "peak_rss_bytes": 1},
        "steps": steps,
        "unify": {"source_records": n // 7, "parties_rows": n // 4, "candidate_pairs": n, "link_seconds": 2.0,
                  "stage_wall_s": secs.get("unify", 1), "peak_rss_bytes": rss, "kernel_peak_rss_bytes": rss,
                  "accuracy": {"pair_f1": f1, "cluster_f1": f1, "blocking_recall": 0.99}},
        "splink": {"status": "ok", "threshold": 0.9, "prepare": {"wall_s": 1.0},
                   "link": {"seconds": 3.0, "wall_s": 5.0, "peak_rss_bytes": 2 * rss, "linkage_peak_rss_bytes": 2 * rss,
                            "records": n // 7, "candidate_pairs": n, "splink": "5.0.0", "duckdb": "2.0.1"},
                   "accuracy": {"pair_f1": 0.98, "cluster_f1": 0.98, "blocking_recall": 0.99}},
    }  # fmt: skip
    scale["pipeline"] = bench.pipeline_summary(scale)
    return scale


def _run(scales: list[dict]) -> dict:
    run = {
        "date": "2026-11-25", "started_at": "2026-11-25T10:00:00+00:00", "scale_arg": ",".join(s["scale"] for s in scales),
        "command": "benchmarks/run.py --scale test", "git_commit": "abc", "code_version": "abc",
        "machine": {"cpu": "Test CPU", "cores": 2, "usable_cores": 2, "ram_bytes": 24 * bench.GIB, "os": "Linux",
                    "load_average_at_start": [0.1, 0.1, 0.1]},
        "versions": {"python": "3.11"}, "scales": scales, "seconds": 10.0,
    }  # fmt: skip
    run["growth"] = bench.growth(scales)
    run["targets"] = bench.targets(scales, run["growth"])
    return run


def test_parse_scales():
    assert bench.parse_scales("quick") == [("quick", 10_000)]
    assert bench.parse_scales("quick, 100k,1m") == [("quick", 10_000), ("100k", 100_000), ("1m", 1_000_000)]
    assert bench.parse_scales("250k,2500,1.5m") == [("250k", 250_000), ("2500", 2_500), ("1.5m", 1_500_000)]
    with pytest.raises(SystemExit):
        bench.parse_scales("huge")


def test_growth_per_10x():
    assert bench.growth_per_10x(10_000, 1.0, 100_000, 10.0) == pytest.approx(10.0)  # linear
    assert bench.growth_per_10x(10_000, 1.0, 100_000, 100.0) == pytest.approx(100.0)  # quadratic
    assert bench.growth_per_10x(100, 2.0, 10_000, 2.0) == pytest.approx(1.0)  # constant
    # a 4x step in records that took 4x the time is linear: 10x per 10x records
    assert bench.growth_per_10x(25_000, 1.0, 100_000, 4.0) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        bench.growth_per_10x(100, 1.0, 100, 2.0)


def test_growth_rows_and_targets():
    small = _scale("quick", 10_000, {s: 10.0 for s in bench.PIPELINE_STEPS})
    big_secs = {s: 50.0 for s in bench.PIPELINE_STEPS} | {"unify": 200.0}  # unify grows 20x per 10x
    big = _scale("100k", 100_000, big_secs)
    run = _run([big, small])  # any order: sorted by records
    rows = {g["step"]: g for g in run["growth"]}
    assert rows["ingest"]["per_10x"] == pytest.approx(5.0, rel=1e-3) and rows["ingest"]["ok"]
    assert rows["unify"]["per_10x"] == pytest.approx(20.0, rel=1e-3) and not rows["unify"]["ok"]
    by = {(t["target"], t["scale"], t["value"].split(":")[0]): t["status"] for t in run["targets"]}
    assert by[("whole pipeline <= 90 s", "100k", "500.0 s")] == "missed"  # 6 x 50 + 200
    growth_status = {
        t["value"].split(":")[0]: t["status"] for t in run["targets"] if t["target"].startswith("10x")
    }
    assert growth_status["unify"] == "missed" and growth_status["ingest"] == "met"
    link = [t for t in run["targets"] if t["target"].startswith("linkage")]
    assert link and all(t["status"] == "met" for t in link)  # faster, better F1, half the memory


def test_pipeline_summary_flags_failures():
    scale = _scale("quick", 10_000, {s: 10.0 for s in bench.PIPELINE_STEPS})
    scale["steps"][-1]["status"] = "failed"
    summary = bench.pipeline_summary(scale)
    assert summary["failed"] == [bench.RENDER] and not summary["complete"]
    assert summary["wall_s"] == pytest.approx(70.0)


def test_bare_linkage_run_is_preferred_for_the_target():
    scale = _scale("1m", 1_000_000, {s: 10.0 for s in bench.PIPELINE_STEPS}, rss=3 * 10**9)
    scale["unify_bare"] = {
        "status": "ok",
        "seconds": 9.0,
        "wall_s": 12.0,
        "records": 140_000,
        "candidate_pairs": 10**6,
        "linkage_peak_rss_bytes": 10**9,
        "accuracy": {"pair_f1": 0.99},
    }
    run = _run([scale])
    (link,) = [t for t in run["targets"] if t["target"].startswith("linkage")]
    assert "(bare processes)" in link["target"] and link["status"] == "missed"  # 9 s vs Splink's 3 s
    assert link["note"] == "worse on: time"
    assert "| ours, bare process | 140,000 |" in bench.render_markdown(run)
    assert bench.step_seconds(scale)["unify_link_bare"] == 9.0


def test_markdown_report():
    run = _run([_scale("quick", 10_000, {s: 10.0 for s in bench.PIPELINE_STEPS})])
    md = bench.render_markdown(run)
    assert "# Benchmark 2026-11-25 — scale quick" in md
    assert "| ingest | ok | 10.0 | - | 6.00 | 954 MiB | 10,000 | 5,000 |" in md
    assert "Splink 5.0.0 + DuckDB 2.0.1" in md and "## Targets" in md
    table = bench.md_table(["name", "s"], [["a", "1.5"], ["b|c", "-"]])
    assert table.splitlines()[1] == "|---|---:|" and "b\\|c" in table
    assert bench.fmt_bytes(3 * bench.GIB) == "3.00 GiB" and bench.fmt_bytes(2048) == "2 KiB"
    assert bench.fmt_seconds(123.4) == "123" and bench.fmt_seconds(1.234) == "1.23"


def test_write_results(tmp_path):
    old = _run([_scale("quick", 10_000, {s: 10.0 for s in bench.PIPELINE_STEPS})])
    old["date"], old["started_at"] = "2026-11-24", "2026-11-24T10:00:00+00:00"
    bench.write_results(old, tmp_path)
    new = _run([_scale("100k", 100_000, {s: 30.0 for s in bench.PIPELINE_STEPS})])
    path = bench.write_results(new, tmp_path)
    assert json.loads(path.read_text())["scales"][0]["scale"] == "100k"
    assert (tmp_path / "2026-11-25-100k.md").exists() and (tmp_path / "scaling.png").stat().st_size > 1000
    readme = (tmp_path / "README.md").read_text()
    assert "quick (10,400) s" in readme and "100k (104,000) s" in readme  # newest result per scale
    assert "[2026-11-24-quick](2026-11-24-quick.md)" in readme
    again = _run([_scale("100k", 100_000, {s: 20.0 for s in bench.PIPELINE_STEPS})])
    again["started_at"] = "2026-11-25T12:00:00+00:00"
    second = bench.write_results(again, tmp_path)
    assert second.name == "2026-11-25-100k-2.json" and path.exists()  # the day's first run is kept
    assert (tmp_path / "2026-11-25-100k-2.md").exists()
    assert "[2026-11-25-100k-2](2026-11-25-100k-2.md)" in (tmp_path / "README.md").read_text()


def test_measure_sees_memory_of_children(tmp_path):
    code = (
        "import subprocess, sys, time; x = bytearray(120 * 2**20); time.sleep(0.4); "
        "subprocess.run([sys.executable, '-c', 'import time; y = bytearray(200 * 2**20); time.sleep(0.4)'])"
    )
    m = bench.measure([sys.executable, "-c", code], cwd=tmp_path, log=tmp_path / "log.txt")
    assert m.ok and m.wall >= 0.8
    assert m.max_process_rss >= 200 * 2**20  # the waited-for grandchild counts
    assert m.tree_peak_rss >= 120 * 2**20
    failed = bench.measure(
        [sys.executable, "-c", "print('RESULT {\"a\": 1}'); raise SystemExit(3)"],
        cwd=tmp_path,
        log=tmp_path / "log2.txt",
    )
    assert failed.returncode == 3 and bench.result_line(failed.log) == {"a": 1}


def test_git_commit_and_machine():
    commit = bench.git_commit()
    assert commit is None or all(c in "0123456789abcdef" for c in commit)
    m = bench.machine()
    assert m["cores"] >= 1 and m["ram_bytes"] > 0 and m["cpu"]


def test_io_floor_reads_every_raw_file(sample_project):
    floor = io_floor.read_floor(sample_project)
    files = floor["files"]
    assert {"erp/clientes.csv", "web/orders.jsonl", "support/tickets.xlsx", "loyalty/loyalty.sqlite"} <= set(
        files
    )
    assert all(f["rows"] > 0 for f in files.values())
    assert files["web/orders.jsonl"]["sources"] == ["web_customers", "web_orders"]
    assert floor["seconds_per_source"] >= floor["seconds"] > 0


@pytest.mark.slow
def test_harness_end_to_end(tmp_path):
    """The harness on a tiny sample: ingest + unify in one `scv run` process, results written."""
    results = tmp_path / "results"
    code = bench.main(
        [
            "--scale",
            "1500",
            "--stages",
            "ingest,unify",
            "--no-splink",
            "--work",
            str(tmp_path / "work"),
            "--results",
            str(results),
        ]
    )
    assert code == 0
    run = json.loads(next(results.glob("*-1500.json")).read_text())
    scale = run["scales"][0]
    steps = {s["step"]: s for s in scale["steps"]}
    assert steps["ingest"]["status"] == "ok" and steps["ingest"]["rows_in"] > 0
    assert steps["unify"]["status"] == "ok" and steps["unify"]["peak_rss_bytes"] > 50 * 2**20
    assert scale["run"]["status"] == "ok" and scale["run"]["command"].startswith("scv run --period")
    assert "--stage ingest --stage unify" in scale["run"]["command"]
    for step in steps.values():  # the kernel's own numbers, recorded by each stage
        assert 0 < step["notebook_s"] < step["wall_s"] and step["cpu_s"] > 0
    assert scale["pipeline"]["one_process"] and scale["pipeline"]["wall_s"] >= steps["unify"]["wall_s"]
    assert 0.5 < scale["unify"]["accuracy"]["pair_f1"] <= 1.0
    assert scale["io_floor"]["status"] == "ok"
    assert (results / "README.md").exists()
