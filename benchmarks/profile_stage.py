"""Profile one stage: run its notebook's code cells in this process under cProfile (no kernel, no Papermill).

    .venv/bin/python benchmarks/run.py --scale 100k --keep-work          # leaves benchmarks/work/100k
    .venv/bin/python benchmarks/profile_stage.py --root benchmarks/work/100k --stage unify --period 2026-10

Prints the seconds per notebook cell and the top functions (own time and cumulative), and writes
``<root>/profiles/<stage>.prof`` (open with ``python -m pstats`` or snakeviz). The stage writes its outputs
as in a real run (a re-run of a period is allowed by the pipeline). Earlier stages must have run in
``root`` for the same period.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook_cells(path: Path) -> list[tuple[str, bool]]:
    """(source, is the parameters cell) for every code cell of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        out.append((source, "parameters" in cell.get("metadata", {}).get("tags", [])))
    return out


def profile_stage(root: Path, stage: str, period: str, top: int = 25) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from helpers.pipeline import STAGES

    spec = {s.name: s for s in STAGES}.get(stage)
    if spec is None:
        raise SystemExit(f"unknown stage {stage!r}; the stages are {[s.name for s in STAGES]}")
    os.environ["SCV_ROOT"] = str(root)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(root / "notebooks")
    cells = notebook_cells(root / "notebooks" / spec.notebook)
    namespace: dict = {"__name__": "__main__"}
    profiler = cProfile.Profile()
    timings = []
    for i, (source, is_parameters) in enumerate(cells, start=1):
        code = compile(source, f"<{spec.notebook} cell {i}>", "exec")
        t0 = time.perf_counter()
        profiler.enable()
        exec(code, namespace)  # noqa: S102 - the project's own notebook
        profiler.disable()
        timings.append(
            (i, time.perf_counter() - t0, source.strip().splitlines()[0][:70] if source.strip() else "")
        )
        if is_parameters:
            namespace.update(period=period, run_id=f"profile-{stage}", overrides={})
    out_dir = root / "profiles"
    out_dir.mkdir(exist_ok=True)
    profiler.dump_stats(out_dir / f"{stage}.prof")
    buf = io.StringIO()
    buf.write(f"# {stage} ({spec.notebook}) period {period}: {sum(t for _, t, _ in timings):.1f} s\n\n")
    buf.write("cell  seconds  first line\n")
    for i, t, first in timings:
        buf.write(f"{i:4d} {t:8.2f}  {first}\n")
    for key in ("tottime", "cumulative"):
        buf.write(f"\n## top {top} by {key}\n")
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats(key).print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--root", type=Path, required=True, help="a benchmark work folder, e.g. benchmarks/work/100k"
    )
    p.add_argument("--stage", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    root = args.root.resolve()  # profile_stage changes the working directory
    report = profile_stage(root, args.stage, args.period, args.top)
    (root / "profiles" / f"{args.stage}.txt").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
