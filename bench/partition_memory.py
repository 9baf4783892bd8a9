"""Does the partition step's memory stay flat as the data grows? (data issue's benchmark)

Generates Parquet data of 1M and 8M rows x 20 float32 features, runs the
flow end to end with P=8 on each, and prints:
  - peak RSS of the partition step for both sizes (goal: ratio 8M/1M <= 1.2);
  - peak RSS of the largest train task next to a single-process fit of the same
    model on all the data (goal: train <= single / P + 150 MB);
  - partition throughput next to a bare pyarrow scan of the same files (goal: >= 50%), both
    best of five fresh processes; the flow step's own figure from its one run is printed too.

    python bench/partition_memory.py [--quick] [--sizes 1000000 8000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "flows" / "train.py"
FEATURES = 20
ROWS_PER_FILE = 1_000_000
MODEL = {"n_estimators": 4, "max_depth": 10, "n_jobs": 1, "random_state": 0}


def generate(folder: Path, rows: int, seed: int = 0) -> None:
    """Files of up to 1M rows, written in 250k-row row groups, never all in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=FEATURES)
    done = 0
    i = 0
    while done < rows:
        n = min(ROWS_PER_FILE, rows - done)
        writer = None
        for start in range(0, n, 250_000):
            m = min(250_000, n - start)
            X = rng.normal(size=(m, FEATURES)).astype(np.float32)
            y = ((X @ w + rng.normal(scale=2.0, size=m)) > 0).astype(np.int64) + (X[:, 0] > 1.0)
            cols = {f"f{j}": X[:, j] for j in range(FEATURES)}
            cols["label"] = y
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(folder / f"part-{i:03d}.parquet", table.schema)
            writer.write_table(table)
        writer.close()
        done += n
        i += 1


# Both throughput figures below are measured the same way: in a fresh process, imports
# (and Array.to_numpy's lazy pandas import) done before the clock starts, best of five.
# A fresh process on this VM pays for every page it first touches -- 50 MB costs 7 ms one
# time and 300 ms the next -- so one run of either is noise, and a warm scan in this
# process would flatter the scan against the flow's fresh partition process.
# Writes pay the same way: 640 MB into new files took 3.2-3.4 s here, and 0.12 s right
# after a file of that size was deleted. Each partition-alone round deletes its output, so
# the next writes at memory speed: these figures are the code's own cost. The flow's step
# writes onto fresh pages and is bound by that write speed (~200 MB/s, about 2.3 M rows/s of
# 20 float32 features + an int64 label); its one-run figure is printed beside them.
SCAN = r"""
import json, sys, time
from pathlib import Path
import pyarrow.parquet as pq
files = sorted(Path(sys.argv[1]).glob("*.parquet"))
next(pq.ParquetFile(files[0]).iter_batches(batch_size=10)).column(0).to_numpy()
t0 = time.perf_counter()
rows = 0
for f in files:
    for batch in pq.ParquetFile(f).iter_batches(batch_size=int(sys.argv[2])):
        for col in batch.columns:
            col.to_numpy(zero_copy_only=False)
        rows += batch.num_rows
print(json.dumps({"rows_per_second": rows / (time.perf_counter() - t0)}))
"""

PARTITION_ALONE = r"""
import json, shutil, sys, tempfile
from shardfit import spec as spec_mod
from shardfit.partition import partition
from shardfit.storage import LocalStorage
out = tempfile.mkdtemp(prefix="shardfit-bench-part-")
plan = partition(spec_mod.load(sys.argv[1]), LocalStorage(out), "p", True, progress_every=3600)
shutil.rmtree(out)
print(json.dumps({"rows_per_second": plan["rows_per_second"]}))
"""


def _rate(script: str, args: list[str]) -> float:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["rows_per_second"]


def throughput(folder: Path, spec_path: Path, chunk_rows: int, rounds: int = 5) -> dict:
    """rows/s, best of `rounds` fresh processes each: a bare pyarrow scan (every column to numpy,
    nothing else) and the flow's partitioning code (`shardfit.partition.partition`) on the same
    files, taken in turn so that both see the same state of the machine."""
    scans, parts = [], []
    for _ in range(rounds):
        scans.append(_rate(SCAN, [str(folder), str(chunk_rows)]))
        parts.append(_rate(PARTITION_ALONE, [str(spec_path)]))
    return {"bare_scan_rows_per_second": max(scans), "partition_alone_rows_per_second": max(parts),
            "bare_scan_runs": scans, "partition_alone_runs": parts}


SINGLE_FIT = r"""
import resource, sys, numpy as np, pyarrow.parquet as pq, glob, json, time
from sklearn.ensemble import RandomForestClassifier
files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
X = np.empty((n, NF), dtype=np.float32); y = np.empty(n, dtype=np.int64); i = 0
for f in files:
    for b in pq.ParquetFile(f).iter_batches(batch_size=250_000):
        m = b.num_rows
        for j in range(NF):
            X[i:i+m, j] = b.column(j).to_numpy()
        y[i:i+m] = b.column(NF).to_numpy(); i += m
t = time.time()
RandomForestClassifier(**json.loads(sys.argv[2])).fit(X, y)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"peak_rss_mb": int(hwm) / 1024, "fit_seconds": time.time() - t}))
""".replace("NF", str(FEATURES))


def single_fit(folder: Path) -> dict:
    """Peak RSS of one process loading everything (as float32) and fitting the same forest."""
    out = subprocess.run([sys.executable, "-c", SINGLE_FIT, str(folder), json.dumps(MODEL)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


CHUNK_ROWS = 100_000


def run_flow(folder: Path, work: Path, partitions: int, env: dict) -> dict:
    spec = {
        "name": "bench-memory",
        "data": {"source": str(folder / "*.parquet"), "partitions": partitions, "seed": 1,
                 "test_size": 0.1, "chunk_rows": CHUNK_ROWS},
        "model": {"module": "sklearn.ensemble", "class": "RandomForestClassifier", "parameters": MODEL},
        "output": str(work / "models"),
    }
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    t0 = time.time()
    res = subprocess.run([sys.executable, str(FLOW), "run", "--spec", str(path)], cwd=work, env=env,
                         capture_output=True, text=True)
    if res.returncode:
        sys.exit(res.stdout[-3000:] + res.stderr[-3000:])
    wall = time.time() - t0
    manifest = json.loads(next((work / "models" / "bench-memory").glob("*/manifest.json")).read_text())
    m = manifest["metrics"]
    return {
        "wall_seconds": wall,
        "partition_peak_rss_mb": m["steps"]["partition"]["peak_rss_mb"],
        "partition_seconds": m["steps"]["partition"]["seconds"],
        "partition_rows_per_second": m["partition_rows_per_second"],
        "train_peak_rss_mb_max": max(p["peak_rss_mb"] for p in m["partitions"]),
        "join_peak_rss_mb": m["steps"]["join"]["peak_rss_mb"],
        "accuracy": m["merged"]["accuracy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="250k and 2M rows instead of 1M and 8M")
    ap.add_argument("--sizes", type=int, nargs=2, default=None)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "partition_memory.json"))
    args = ap.parse_args()
    sizes = args.sizes or ([250_000, 2_000_000] if args.quick else [1_000_000, 8_000_000])
    P = args.partitions
    work = Path(tempfile.mkdtemp(prefix="shardfit-bench-mem-"))
    env = dict(os.environ, METAFLOW_DATASTORE_SYSROOT_LOCAL=str(work / "mf"),
               METAFLOW_USER=os.environ.get("METAFLOW_USER", "bench"))
    results = {}
    for rows in sizes:
        folder = work / f"data-{rows}"
        t0 = time.time()
        generate(folder, rows)
        print(f"generated {rows:,} rows x {FEATURES} float32 in {time.time() - t0:.0f}s", flush=True)
        (work / f"run-{rows}").mkdir()
        r = run_flow(folder, work / f"run-{rows}", P, env)
        r.update(throughput(folder, work / f"run-{rows}" / "spec.yaml", CHUNK_ROWS))
        r["single_fit"] = single_fit(folder)
        results[rows] = r
        print(json.dumps({rows: r}), flush=True)
    small, big = sizes
    a, b = results[small], results[big]
    ratio = b["partition_peak_rss_mb"] / a["partition_peak_rss_mb"]
    print()
    print(f"P = {P}, {FEATURES} float32 features, model RandomForestClassifier({MODEL})")
    print(f"{'rows':>10} | {'partition peak RSS MB':>21} | {'largest train RSS MB':>20} | {'single fit RSS MB':>17} | "
          f"{'single/P + 150':>14}")
    for rows in sizes:
        r = results[rows]
        budget = r["single_fit"]["peak_rss_mb"] / P + 150
        print(f"{rows:>10,} | {r['partition_peak_rss_mb']:>21.0f} | {r['train_peak_rss_mb_max']:>20.0f} | "
              f"{r['single_fit']['peak_rss_mb']:>17.0f} | {budget:>14.0f}")
    print()
    print(f"{'rows':>10} | {'bare pyarrow rows/s':>19} | {'partition alone rows/s':>22} | {'% of bare':>9} | "
          f"{'flow step rows/s':>16} | {'% of bare':>9}")
    for rows in sizes:
        r = results[rows]
        bare = r["bare_scan_rows_per_second"]
        print(f"{rows:>10,} | {bare:>19,.0f} | {r['partition_alone_rows_per_second']:>22,.0f} | "
              f"{100 * r['partition_alone_rows_per_second'] / bare:>8.0f}% | {r['partition_rows_per_second']:>16,.0f} | "
              f"{100 * r['partition_rows_per_second'] / bare:>8.0f}%")
    print("bare pyarrow and partition alone: best of 5 fresh processes each, taken in turn (goal: partition >= 50% "
          "of bare); flow step: the partition step's own figure in its one flow run")
    print(f"partition peak RSS ratio {big:,}/{small:,} rows: {ratio:.2f} (goal <= 1.2)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"partitions": P, "features": FEATURES, "model": MODEL, "results": results,
                               "partition_rss_ratio": ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
