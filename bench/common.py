"""Helpers shared by the benchmark scripts: tables, timing, running the flow, reproducing its split.

Every script prints each figure the moment it is measured (`log`), and renders
its tables twice: aligned text for stdout and Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "flows" / "train.py"
OUT = ROOT / "bench" / "out"


def log(msg: str = "") -> None:
    print(msg, flush=True)


# -- timing -----------------------------------------------------------------
class Timer:
    """`with Timer() as t: ...` then `t.seconds` (wall clock, perf_counter)."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- formatting -------------------------------------------------------------
def fmt_acc(value: Any) -> str:
    """An accuracy as 0.xxxx, or the string it already is ('crash: ValueError', 'n/a')."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def fmt_s(seconds: float | None, digits: int = 1) -> str:
    if seconds is None or (isinstance(seconds, float) and np.isnan(seconds)):
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.{digits}f} s"


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MB"


def binomial_se(acc: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent rows."""
    return float(np.sqrt(acc * (1 - acc) / max(n, 1)))


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A Markdown table; columns whose index is in `right` are right-aligned."""
    rows = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    sep = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def show_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Print the table to stdout and return it as Markdown."""
    log()
    log(title)
    log(text_table(headers, rows))
    log()
    return md_table(headers, rows, right)


def standalone(doc: str, quick_help: str, prefix: str, run: Callable[..., dict],
               add_args: Callable[[Any], None] | None = None) -> None:
    """Run one benchmark on its own (`python bench/X.py [--quick]`) in a temporary folder; print its markdown."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    if add_args:
        add_args(ap)
    args = vars(ap.parse_args())
    quick = args.pop("quick")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        res = run(quick, Path(tmp), **args)
    print(res["markdown"])


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: benchmarks run headless and only save files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(res: dict, stem: str, plot: Callable[[dict, Path], str], markdown: Callable[[dict], str]) -> dict:
    """Add the plot and the markdown to a benchmark's results and write them as bench/out/<stem>.json."""
    res["plot"] = plot(res, OUT / f"{stem}.png")
    res["markdown"] = markdown(res)
    write_json(OUT / f"{stem}.json", res)
    return res


def save_figure(fig: Any, path: Path) -> str:
    """Write a plot next to the benchmark's JSON; return its path relative to the repo for the markdown."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"wrote {path}")
    return str(path.relative_to(ROOT))


def write_json(path: Path, obj: Any) -> None:
    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        if hasattr(o, "item"):
            return o.item()
        return str(o)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=default))


# -- environment ------------------------------------------------------------
LIBRARIES = ("scikit-learn", "numpy", "joblib", "skops", "metaflow", "pyarrow", "dask", "dask-ml", "matplotlib")


def machine_info() -> dict:
    import importlib.metadata as md

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for pkg in LIBRARIES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "versions": versions,
        "loadavg": os.getloadavg(),
    }


# -- the flow -----------------------------------------------------------------
def flow_env(workdir: Path, **extra: str) -> dict:
    """The flow's environment: its own Metaflow datastore under `workdir`, a user name."""
    env = dict(os.environ)
    env.pop("METAFLOW_PROFILE", None)
    env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(workdir / "mf")
    env["METAFLOW_USER"] = os.environ.get("METAFLOW_USER") or "bench"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


ECHO = ("train: partition", "join:", "end: ", "partition:")


def run_flow(spec: dict, workdir: Path, label: str) -> dict:
    """Run flows/train.py end to end on `spec` in `workdir`; return wall time, manifest and model.

    The flow's progress lines (train/join/end) are echoed as they come; the full
    output is kept in `workdir/<label>.log`.
    """
    from shardfit import registry

    workdir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    spec["output"] = str(workdir / "models")
    path = workdir / f"{label}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    log_path = workdir / f"{label}.log"
    cmd = [sys.executable, str(FLOW), "run", "--spec", str(path)]
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=workdir, env=flow_env(workdir), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if any(k in line for k in ECHO):
                text = re.sub(r"^.*?\[[^\]]*\(pid \d+\)\] ", "", line.rstrip())  # drop Metaflow's prefix
                log(f"    [flow {label}] {text[:160]}")
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc:
        tail = log_path.read_text()[-4000:]
        raise RuntimeError(f"flow run '{label}' failed with exit code {rc}:\n{tail}")
    manifest = registry.read_manifest(spec["output"], spec["name"])
    model = registry.load_model(spec["output"], spec["name"], manifest["version"])
    card = re.search(r"report card built in ([\d.]+)s", log_path.read_text())
    return {"wall_seconds": wall, "manifest": manifest, "model": model, "log": str(log_path),
            "card_seconds": float(card.group(1)) if card else None}


def critical_path(flow: dict, X_holdout: np.ndarray | None = None) -> dict:
    """Split a flow run's wall time into step compute on the critical path and the rest (orchestration).

    critical path = start + partition + slowest train task (its fit, from the manifest, plus its
    holdout scoring) + join (merge + evaluate, from the manifest) + publishing + the report card.
    The manifest records neither a train task's scoring nor the join's publishing: with `X_holdout`
    both are estimated here, by timing a sub-forest of the slowest task's size (a slice of the
    published model) on the holdout, and by serialising the published model as the registry does.
    The card time is the join's own "report card built in" line. Overhead = wall - critical path:
    process start-up and imports for every task, Metaflow's artifact persistence, the card render
    subprocess, the end step.
    """
    import copy

    from shardfit import registry

    manifest, model, wall = flow["manifest"], flow["model"], flow["wall_seconds"]
    m = manifest["metrics"]
    steps = m["steps"]
    slowest = max(m["partitions"], key=lambda r: r["fit_seconds"])
    scoring = publish = 0.0
    if X_holdout is not None:
        sub = copy.copy(model)
        if hasattr(model, "estimators_") and slowest.get("n_estimators"):
            sub.estimators_ = model.estimators_[: slowest["n_estimators"]]
            sub.n_estimators = len(sub.estimators_)
        scoring = median_seconds(lambda: sub.predict(X_holdout), repeats=3)
        fmt, level = manifest.get("format", "joblib"), 3
        publish = median_seconds(lambda: registry.serialize(model, fmt, level), repeats=1)
    parts = {
        "start": steps["start"]["seconds"],
        "partition": steps["partition"]["seconds"],
        "train_fit": slowest["fit_seconds"],
        "train_scoring": scoring,
        "join": steps["join"]["seconds"],
        "publish": publish,
        "card": flow.get("card_seconds") or 0.0,
    }
    compute = sum(parts.values())
    return {**{f"{k}_seconds": v for k, v in parts.items()}, "compute_seconds": compute,
            "wall_seconds": wall, "overhead_seconds": wall - compute, "merge_seconds": m.get("merge_seconds")}


# -- reproducing the flow's split in-process ---------------------------------
def flow_split(spec: dict, n_parts: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, dest) exactly as the flow's partition step sees them for a shuffle/stratified spec.

    X is float32 and y int64, chunk by chunk from the same reader; dest is -1 for
    the holdout, -2 for calibration, else the partition index. For `shuffle` the
    holdout depends only on the seed, not on the number of partitions.
    """
    from shardfit.data import Source
    from shardfit.partition import Assigner

    data = spec["data"]
    assert data["partitioning"] in ("shuffle", "stratified"), data["partitioning"]
    source = Source(data)
    assigner = Assigner(data["partitioning"], n_parts or data["partitions"], data["test_size"],
                        spec["merger"]["calibration_size"], data["seed"])
    xs, ys, ds = [], [], []
    for unit in source.units:
        for X, y in source.iter_chunks(unit):
            y = y.astype(np.int64)
            xs.append(X)
            ys.append(y)
            ds.append(assigner.assign(y))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)


def worker_params(spec_model: dict, index: int, n_parts: int, seed: int) -> dict:
    """The flow's parameters for worker `index` (tree budget and own seed), from shardfit itself."""
    from shardfit.estimator import worker_params as wp

    return wp(spec_model, index, n_parts, seed)


def resolved(raw: dict) -> dict:
    from shardfit import spec as spec_mod

    return spec_mod.resolve(raw)


# -- sampling the real peak memory of child processes --------------------------
def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class PeakSampler:
    """Polls every descendant of `root_pid` and keeps each one's VmHWM (peak RSS of its own image).

    `ru_maxrss` (what shardfit and bench/partition_memory.py record) is inherited
    across fork + exec on Linux, so a child's figure is at least its parent's RSS at
    the time it was started; VmHWM is reset by exec and is each process's own peak.
    Polling can miss a rise in the last `interval` seconds before a process exits.
    `classify(cmdline, cwd)` names a process (or returns None to ignore it).
    """

    def __init__(self, root_pid: int, classify: Callable[[list[str], str], str | None], interval: float = 0.1):
        import threading

        self.root, self.classify, self.interval = root_pid, classify, interval
        self.peaks: dict[tuple[int, float], dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.root)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                children = []
            for p in children:
                try:
                    cmdline = p.cmdline()
                    # A forked child shows its parent's command line until it execs: key on both.
                    key = (p.pid, p.create_time(), tuple(cmdline))
                    if key not in self.peaks:
                        self.peaks[key] = {"name": self.classify(cmdline, p.cwd()), "hwm_kb": 0, "polls": 0}
                    entry = self.peaks[key]
                    if entry["name"] is None:
                        continue
                    hwm = _status_kb(p.pid, "VmHWM")
                    if hwm is not None:
                        entry["polls"] += 1
                        entry["hwm_kb"] = max(entry["hwm_kb"], hwm)
                except psutil.Error:
                    continue
            self._stop.wait(self.interval)

    def by_name(self) -> dict[str, list[float]]:
        """{name: [peak MB of each process with that name]}, ignoring processes seen only once
        (a fork caught before its exec, still carrying its parent's memory)."""
        out: dict[str, list[float]] = {}
        for v in self.peaks.values():
            if v["name"] is not None and v["hwm_kb"] and v["polls"] >= 2:
                out.setdefault(v["name"], []).append(v["hwm_kb"] / 1024)
        return out


# -- was anything else using the machine? ----------------------------------------
def cpu_snapshot() -> dict:
    """System-wide busy CPU seconds and this process tree's own CPU seconds (waited children included)."""
    import resource

    import psutil

    t = psutil.cpu_times()
    fields = t._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    busy = total - fields.get("idle", 0.0) - fields.get("iowait", 0.0)
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    return {"busy": busy, "own": own, "wall": time.perf_counter()}


def foreign_cpu(start: dict, end: dict) -> dict:
    """CPU used by other processes between two snapshots, in core-seconds and as a share of capacity."""
    wall = end["wall"] - start["wall"]
    foreign = max(0.0, (end["busy"] - start["busy"]) - (end["own"] - start["own"]))
    capacity = wall * (os.cpu_count() or 1)
    return {"core_seconds": foreign, "share": foreign / capacity if capacity else 0.0,
            "own_core_seconds": end["own"] - start["own"], "wall_seconds": wall}
