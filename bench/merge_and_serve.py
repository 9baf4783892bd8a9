"""What merging costs, and what serving a merged forest costs next to a single forest of the same size.

5-class make_classification (20 features, random_state 0): 40k training rows
(--quick 16k) split IID into P = 8 partitions; one RandomForestClassifier per
partition (max_leaf_nodes=256 so merged and single trees have the same shape,
own seed per partition as the flow gives them). For a total of 64 .. 1024 trees
(--quick 64 .. 256) it measures:

  merge      seconds of mergers.forest.combine_forests over the 8 sub-forests (median of 3),
             and the size of the merged copy's tree arrays (held next to the sub-forests)
  size       on disk: joblib uncompressed, joblib compress=3 (the registry's default), skops
  load       seconds to load each file (median of up to 3)
  predict    latency for 1 row (median of 25) and 10,000 rows (median of 5), n_jobs=1

for the merged forest and for one forest with the same total number of trees fitted
on all the rows (64, 256, 1024 trees; --quick 64, 256).

    .venv/bin/python bench/merge_and_serve.py [--quick]
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import common
import joblib
import numpy as np
from common import Timer, fmt_mb, fmt_s, log
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from mergers.forest import combine_forests

SEED = 0
P = 8
N_JOBS = 2
LEAVES = 256
SERVE_ROWS = 10_000


def sliced(forest: RandomForestClassifier, k: int) -> RandomForestClassifier:
    """The forest's first k trees (what fitting it with n_estimators=k and the same seed gives)."""
    out = copy.copy(forest)
    out.estimators_ = forest.estimators_[:k]
    out.n_estimators = k
    return out


def tree_bytes(forest: RandomForestClassifier) -> int:
    """Bytes of the forest's node and value arrays: the memory a merged copy adds next to its inputs."""
    total = 0
    for t in forest.estimators_:
        state = t.tree_.__getstate__()
        total += state["nodes"].nbytes + state["values"].nbytes
    return total


def timed_runs(fn, max_runs: int = 3, budget: float = 8.0) -> tuple[float, int]:
    """Median of up to `max_runs` timed calls, stopping early once `budget` seconds are spent."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def serve_stats(model: RandomForestClassifier, folder: Path, tag: str, X_serve: np.ndarray,
                y_serve: np.ndarray) -> dict:
    import skops.io as sio

    model = copy.copy(model)
    model.n_jobs = None  # serving: one thread, as scikit-learn's default
    out: dict = {"trees": len(model.estimators_),
                 "mean_nodes": float(np.mean([t.tree_.node_count for t in model.estimators_])),
                 "accuracy": float(np.mean(model.predict(X_serve) == y_serve))}
    files = {"joblib": folder / f"{tag}.joblib", "joblib_c3": folder / f"{tag}.c3.joblib",
             "skops": folder / f"{tag}.skops"}
    joblib.dump(model, files["joblib"], compress=0)
    joblib.dump(model, files["joblib_c3"], compress=3)
    sio.dump(model, files["skops"])
    trusted = sio.get_untrusted_types(file=files["skops"])
    loaders = {"joblib": lambda: joblib.load(files["joblib"]),
               "joblib_c3": lambda: joblib.load(files["joblib_c3"]),
               "skops": lambda: sio.load(files["skops"], trusted=trusted)}
    for key, path in files.items():
        out[f"size_{key}"] = path.stat().st_size
        out[f"load_{key}"], out[f"load_{key}_runs"] = timed_runs(loaders[key])
        path.unlink()
    one = X_serve[:1]
    out["predict_1"] = common.median_seconds(lambda: model.predict(one), repeats=25, warmup=2)
    out["predict_10k"] = common.median_seconds(lambda: model.predict(X_serve), repeats=5, warmup=1)
    log(f"  {tag:<22} {out['trees']:>5} trees, {out['mean_nodes']:.0f} nodes/tree | size joblib "
        f"{fmt_mb(out['size_joblib'])}, c3 {fmt_mb(out['size_joblib_c3'])}, skops {fmt_mb(out['size_skops'])} | "
        f"load {fmt_s(out['load_joblib'], 2)} / {fmt_s(out['load_joblib_c3'], 2)} / {fmt_s(out['load_skops'], 2)} | "
        f"predict 1 row {out['predict_1'] * 1000:.1f} ms, {len(X_serve):,} rows {fmt_s(out['predict_10k'], 2)} | "
        f"accuracy {out['accuracy']:.4f}")
    return out


def run(quick: bool, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    n_train = 16_000 if quick else 40_000
    totals = [64, 128, 256] if quick else [64, 128, 256, 512, 1024]
    serve_totals = [64, 256] if quick else [64, 256, 1024]
    log(f"== 4. merge and serve: {n_train:,} training rows, P={P}, RandomForestClassifier(max_leaf_nodes={LEAVES}), "
        f"totals {totals}")
    X, y = make_classification(n_samples=n_train + SERVE_ROWS, n_features=20, n_informative=10, n_classes=5,
                               random_state=SEED)
    X = X.astype(np.float32)
    X_tr, y_tr, X_sv, y_sv = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    classes = np.unique(y)
    part = np.random.default_rng(SEED).integers(P, size=n_train)
    per = max(totals) // P
    model_spec = {"parameters": {"n_estimators": per, "max_leaf_nodes": LEAVES, "n_jobs": N_JOBS,
                                 "random_state": SEED}, "tree_budget": "per_worker"}
    with Timer() as t:
        subs = [RandomForestClassifier(**common.worker_params(model_spec, i, P, SEED)).fit(X_tr[part == i],
                                                                                          y_tr[part == i])
                for i in range(P)]
    log(f"fitted {P} sub-forests x {per} trees in {t.seconds:.1f}s")
    res: dict = {"train_rows": n_train, "partitions": P, "max_leaf_nodes": LEAVES, "serve_rows": SERVE_ROWS,
                 "merge": [], "serve": []}
    for total in totals:
        k = total // P
        parts = [sliced(m, k) for m in subs]
        merge_s = common.median_seconds(lambda parts=parts: combine_forests(parts, classes=classes), repeats=3,
                                        warmup=0)
        merged = combine_forests(parts, classes=classes)
        held = tree_bytes(merged)
        res["merge"].append({"trees": total, "seconds": merge_s, "held_bytes": held,
                             "per_tree_ms": 1000 * merge_s / total})
        log(f"merge {total:>5} trees: {merge_s:.3f}s ({1000 * merge_s / total:.2f} ms/tree), "
            f"the merged copy's tree arrays take {fmt_mb(held)}")
        del merged
    with Timer() as t:
        single_full = RandomForestClassifier(n_estimators=max(serve_totals), max_leaf_nodes=LEAVES,
                                             random_state=SEED, n_jobs=N_JOBS).fit(X_tr, y_tr)
    log(f"fitted the single forest ({max(serve_totals)} trees on all {n_train:,} rows) in {t.seconds:.1f}s")
    for total in serve_totals:
        merged = combine_forests([sliced(m, total // P) for m in subs], classes=classes)
        row = {"trees": total,
               "merged": serve_stats(merged, workdir, f"merged-{total}", X_sv, y_sv),
               "single": serve_stats(sliced(single_full, total), workdir, f"single-{total}", X_sv, y_sv)}
        res["serve"].append(row)
        del merged
    return common.finish(res, "merge_and_serve", plot, markdown)


def plot(res: dict, path: Path) -> str:
    plt = common.pyplot()

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.3))
    m = res["merge"]
    a1.plot([r["trees"] for r in m], [r["seconds"] for r in m], marker="o", color="#36a")
    a1.set_xscale("log", base=2)
    a1.set_yscale("log")
    a1.set_xticks([r["trees"] for r in m], [str(r["trees"]) for r in m])
    a1.set_xlabel("total trees (8 sub-forests)")
    a1.set_ylabel("seconds")
    a1.set_title("combine_forests time")
    a1.grid(alpha=0.3)
    s = res["serve"]
    trees = [r["trees"] for r in s]
    for kind, color in (("merged", "#36a"), ("single", "#777")):
        for key, ls, label in (("size_joblib", "-", "joblib"), ("size_joblib_c3", "--", "joblib c3"),
                               ("size_skops", ":", "skops")):
            a2.plot(trees, [r[kind][key] / 2**20 for r in s], ls=ls, marker="o", color=color,
                    label=f"{kind}, {label}")
        a3.plot(trees, [r[kind]["predict_10k"] for r in s], marker="o", color=color,
                label=f"{kind}, {res['serve_rows']:,} rows")
        a3.plot(trees, [r[kind]["predict_1"] for r in s], marker="s", ls="--", color=color, label=f"{kind}, 1 row")
    for ax in (a2, a3):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(trees, [str(t) for t in trees])
        ax.set_xlabel("total trees")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    a2.set_ylabel("MB on disk")
    a2.set_title("model size")
    a3.set_ylabel("seconds (median)")
    a3.set_title("predict latency, n_jobs=1")
    return common.save_figure(fig, path)


def markdown(res: dict) -> str:
    mrows = [[r["trees"], fmt_s(r["seconds"], 2), f"{r['per_tree_ms']:.2f} ms", fmt_mb(r["held_bytes"])]
             for r in res["merge"]]
    t1 = common.show_table("4a. combine_forests over 8 sub-forests", ["total trees", "merge time (median of 3)",
                                                                        "per tree", "merged copy's tree arrays"],
                           mrows, right=(0, 1, 2, 3))
    srows = []
    for r in res["serve"]:
        for kind in ("merged", "single"):
            s = r[kind]
            srows.append([r["trees"], kind, f"{s['mean_nodes']:.0f}", fmt_mb(s["size_joblib"]),
                          fmt_mb(s["size_joblib_c3"]), fmt_mb(s["size_skops"]), fmt_s(s["load_joblib"], 2),
                          fmt_s(s["load_joblib_c3"], 2), fmt_s(s["load_skops"], 2),
                          f"{s['predict_1'] * 1000:.1f} ms", fmt_s(s["predict_10k"], 2), f"{s['accuracy']:.4f}"])
    t2 = common.show_table(
        "4b. serving the merged forest vs one forest with the same trees",
        ["trees", "model", "nodes/tree", "joblib", "joblib c3", "skops", "load joblib", "load c3", "load skops",
         "predict 1 row", f"predict {res['serve_rows']:,} rows", "accuracy"],
        srows, right=tuple(range(2, 12)))
    big, small = res["serve"][-1], res["serve"][0]
    mg, sg = big["merged"], big["single"]
    ratio = mg["predict_10k"] / sg["predict_10k"]
    size_ratio = mg["size_joblib"] / sg["size_joblib"]
    grow_trees = big["trees"] / small["trees"]
    grow_pred = mg["predict_10k"] / small["merged"]["predict_10k"]
    grow_size = mg["size_joblib"] / small["merged"]["size_joblib"]
    skops_vs = mg["load_skops"] / mg["load_joblib"]
    acc_gap = sg["accuracy"] - mg["accuracy"]
    c3 = mg["size_joblib_c3"] / sg["size_joblib_c3"]
    c3_note = (f" Compressed, the merged file is {c3:.2f}× the single one's: its trees' leaves hold fewer rows, so "
               "more of their class fractions are exactly 0 or 1, which compresses better."
               if abs(c3 - 1) > 0.1 else "")
    per_tree = statistics.median(r["per_tree_ms"] for r in res["merge"])
    last = res["merge"][-1]
    return f"""## 4. Merge and serve

`bench/merge_and_serve.py`. 5-class make_classification, {res['train_rows']:,} training rows split IID into
P = {res['partitions']}, `RandomForestClassifier(max_leaf_nodes={res['max_leaf_nodes']})` per partition with its
own seed; the single forest has the same total trees, fitted on all rows. The leaf cap keeps both kinds of
trees the same shape (compare nodes/tree), so the differences below come from merging, not from tree size.
Sizes are file sizes; load is the median of up to 3 loads; predict is the median of 25 single-row and 5
{res['serve_rows']:,}-row calls with `n_jobs=1`; accuracy is on the same {res['serve_rows']:,} rows.

{t1}

{t2}

![merge and serve]({res['plot']})

Merging is linear in the number of trees, about {per_tree:.2f} ms per tree here ({fmt_s(last['seconds'], 2)} for
{last['trees']:,} trees): every tree's value array is rebuilt over the global class set, so the merged copy
({fmt_mb(last['held_bytes'])} of node and value arrays at {last['trees']:,} trees) sits in memory next to
the sub-models, which the join step holds too. The merged model is an ordinary `RandomForestClassifier`: at {big['trees']:,}
trees its uncompressed file is {size_ratio:.2f}× the single forest's and it predicts {res['serve_rows']:,} rows
in {ratio:.2f}× the time, so serving cost follows the tree count, not where the trees came from
({grow_trees:.0f}× the trees cost {grow_size:.1f}× the size and {grow_pred:.1f}× the predict time). That is where
shardfit can lose: with `tree_budget: per_worker` (the default, the operator's behaviour) the merged model
has P× the trees of the forest a user would have trained and pays that in size, load and predict time;
`tree_budget: total` keeps the single forest's size. The merged forest is {acc_gap:.4f} less accurate than
the single one at {big['trees']:,} trees because each of its trees saw 1/{res['partitions']} of the rows
(section 2), not because of the merge. skops (`output.format: skops`, safe to load from untrusted storage)
loads {skops_vs:.1f}× slower than uncompressed joblib.{c3_note}
"""


def main() -> None:
    common.standalone(__doc__, "16k rows, up to 256 trees", "shardfit-bench-serve-", run)

if __name__ == "__main__":
    main()
