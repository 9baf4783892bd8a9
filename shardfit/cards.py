"""The join step's card and the run's tags: what a user sees in the Metaflow UI."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def tag_run(name: str, version: str) -> None:
    """Tag the run with model name and version so the UI and Client can filter by them."""
    from metaflow import Run, current, namespace

    try:
        namespace(None)
        Run(f"{current.flow_name}/{current.run_id}").add_tags([f"model:{name}", f"version:{version}"])
    except Exception as exc:  # noqa: BLE001 - tags are a convenience, never fail a publish for them
        print(f"join: could not tag run: {type(exc).__name__}: {exc}")


# --- the join card -----------------------------------------------------------------------------
# report() builds one section at a time. A section whose input is missing (a regressor has no
# class counts, a merged model without feature_importances_) returns nothing; a section that fails
# anyway is skipped with one log line: a card is a view of the run, never a reason to fail it.

TOP_FEATURES = 15
FIG_DPI = 100
Section = Callable[[Any, str], list]


def fmt_score(value: float) -> str:
    """How scores are printed on the card (the tests look for this exact text)."""
    return f"{value:.4f}"


def report(flow: Any) -> None:
    """Fill the join card: what was published, how each partition did, where the time went."""
    from metaflow import current

    from shardfit.evaluate import SCORE_KEY

    t0, cpu0 = time.time(), time.process_time()
    try:
        card = current.card["report"]
    except Exception as exc:  # noqa: BLE001 - no card decorator (e.g. a bare step): nothing to fill
        print(f"join: no report card: {type(exc).__name__}: {exc}")
        return
    key = SCORE_KEY[flow.kind]
    for section in SECTIONS:
        try:
            components = section(flow, key)
        except Exception as exc:  # noqa: BLE001 - see the note at the top of this section
            print(f"join: card section {section.__name__} skipped: {type(exc).__name__}: {exc}")
            continue
        for component in components:
            card.append(component)
    print(f"join: report card built in {time.time() - t0:.2f}s ({time.process_time() - cpu0:.2f}s CPU)")


def _header(flow: Any, key: str) -> list:
    """Name, version and merged score first: the three things a reader of the card came for."""
    from metaflow.cards import Markdown, Table, ValueBox

    spec, metrics = flow.resolved_spec, flow.metrics
    score = fmt_score(metrics["merged"][key])
    model = spec["model"]
    holdout = metrics.get("holdout_rows") or 0
    lines = [
        f"# {spec['name']} · {key} {score}",
        f"### version `{flow.version}`",
        "",
        f"Merged holdout **{key} {score}** on {holdout:,} rows, "
        f"{len(metrics['partitions'])} partitions merged in {metrics.get('merge_seconds', 0.0):.2f}s.",
        "",
        f"Published **`{flow.model_uri}`**  ",
        f"Version **`{flow.version}`** of `{spec['name']}` — "
        f"`{model['module']}.{model['class']}`",
    ]
    boxes = [ValueBox(title=f"merged holdout {key}", value=score, theme="success"),
             ValueBox(title="holdout rows", value=f"{holdout:,}"),
             ValueBox(title="partitions", value=str(len(metrics["partitions"])))]
    if metrics.get("n_estimators"):
        boxes.append(ValueBox(title="trees", value=f"{metrics['n_estimators']:,}"))
    # One table row keeps the boxes side by side; appended alone each takes the full width.
    return [Markdown("\n".join(lines)), Table([boxes])]


def _spec_table(flow: Any, key: str) -> list:
    """The spec as the flow resolved it, so the card alone says how the model was made."""
    from metaflow.cards import Markdown, Table

    from shardfit.spec import summary

    rows = [[k, str(v)] for k, v in summary(flow.resolved_spec)]
    return [Markdown("## Spec"), Table(rows, headers=["spec", "value"])]


def _partition_table(flow: Any, key: str) -> list:
    """One row per train task: size, cost and holdout score, to spot a bad or slow partition."""
    from metaflow.cards import Markdown, Table

    counts = flow.kind == "classifier"  # a regressor's partitions have no class counts
    rows = [
        [
            str(r["index"]),
            f"{r['rows']:,}",
            *([_class_counts_text(r.get("class_counts"), flow.plan)] if counts else []),
            f"{r['fit_seconds']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            fmt_score(r[key]),
            "-" if r.get("random_state") is None else str(r["random_state"]),
            str(r.get("attempt", 0)),
        ]
        for r in flow.metrics["partitions"]
    ]
    headers = ["partition", "rows", *(["class counts"] if counts else []), "fit s", "peak RSS MB",
               f"holdout {key}", "seed", "attempt"]
    return [Markdown("## Partitions"), Table(rows, headers=headers)]


def _score_chart(flow: Any, key: str) -> list:
    """Each sub-model's holdout score against the merged one: merging should not lose accuracy."""
    from metaflow.cards import Markdown

    records = flow.metrics["partitions"]
    scores = [float(r[key]) for r in records]
    merged = float(flow.metrics["merged"][key])
    fig, ax = _figure(7, 3)
    labels = [f"p{r['index']}" for r in records]
    bars = ax.bar(labels, scores, color="#7aa6c2", label="partition sub-model")
    ax.axhline(merged, color="#d1495b", linewidth=2, label=f"merged {fmt_score(merged)}")
    ax.bar_label(bars, labels=[fmt_score(s) for s in scores], fontsize=8, label_type="center")
    lo, hi = min([*scores, merged]), max([*scores, merged])
    pad = max((hi - lo) * 0.5, 0.01)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel(f"holdout {key}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Holdout {key}: partitions vs merged model", fontsize=10)
    return [Markdown("## Scores"), _image(fig, f"holdout {key} per partition and merged")]


def _class_distribution(flow: Any, key: str) -> list:
    """Stacked class counts per partition: a skewed partition explains a weak sub-model."""
    from metaflow.cards import Markdown

    if flow.kind != "classifier":
        return []
    records = flow.metrics["partitions"]
    counts = [r.get("class_counts") or {} for r in records]
    order = [str(c) for c in (flow.plan.get("classes") or [])]
    order += sorted({k for c in counts for k in c} - set(order))
    if not order:
        return []
    fig, ax = _figure(7, 3)
    labels = [f"p{r['index']}" for r in records]
    bottom = np.zeros(len(records))
    for cls in order:
        heights = np.array([c.get(cls, 0) for c in counts], dtype=float)
        ax.bar(labels, heights, bottom=bottom, label=_label(cls, flow.plan))
        bottom += heights
    ax.set_ylabel("rows")
    ax.set_title("Class distribution per partition", fontsize=10)
    if len(order) <= 12:
        ax.legend(title="class", fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return [Markdown("## Class distribution"), _image(fig, "rows per class in each partition")]


def _feature_importances(flow: Any, key: str) -> list:
    """Top features of the merged forest; skipped for models without feature_importances_."""
    from metaflow.cards import Markdown

    importances = _importances(flow.model)
    if importances is None or importances.ndim != 1 or importances.size == 0:
        return []
    names = list(flow.plan.get("feature_names") or [])
    if len(names) != importances.size:
        names = [f"x{i}" for i in range(importances.size)]
    top = np.argsort(importances)[::-1][:TOP_FEATURES]
    fig, ax = _figure(7, max(1.8, 0.6 + 0.28 * len(top)))
    ax.barh([str(names[i]) for i in top][::-1], importances[top][::-1], color="#5b8e7d")
    ax.set_xlabel("mean decrease in impurity")
    ax.set_title(f"Top {len(top)} feature importances (merged model)", fontsize=10)
    return [Markdown("## Feature importances"), _image(fig, "feature importances")]


def _importances(model: Any) -> np.ndarray | None:
    """The forest's feature_importances_, computed in this thread.

    sklearn's property gives the same numbers (per-tree normalised importances, averaged over
    trees that split, renormalised) but starts n_jobs threads per call: 0.3 s instead of 0.01 s
    on the 1,500-tree moons forest. Anything that is not a plain forest uses the property.
    """
    trees = getattr(model, "estimators_", None)
    if isinstance(trees, list) and trees and all(hasattr(t, "tree_") for t in trees):
        per_tree = [t.tree_.compute_feature_importances() for t in trees if t.tree_.node_count > 1]
        if per_tree:
            mean = np.mean(per_tree, axis=0)
            return mean / mean.sum() if mean.sum() > 0 else mean
    try:
        value = getattr(model, "feature_importances_", None)
    except Exception:  # noqa: BLE001 - sklearn raises for unfitted or non-tree members
        return None
    return None if value is None else np.asarray(value, dtype=float)


def _holdout_plot(flow: Any, key: str) -> list:
    """Where the merged model errs: confusion matrix (classifier) or predicted vs true (regressor)."""
    from metaflow.cards import Markdown

    ev = getattr(flow, "evaluation", None) or {}
    if flow.kind == "classifier":
        cm = np.asarray(ev.get("confusion_matrix") or [], dtype=float)
        if cm.ndim != 2 or cm.size == 0:
            return []
        classes = [str(c) for c in ev.get("classes") or range(len(cm))]
        rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        side = min(2.5 + 0.35 * len(cm), 8)
        fig, ax = _figure(side + 1, side)
        im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        if len(cm) <= 15:
            for (i, j), n in np.ndenumerate(cm):
                ax.text(j, i, f"{int(n):,}", ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
        if len(cm) <= 30:
            ax.set_xticks(range(len(cm)), classes, rotation=45 if len(cm) > 8 else 0)
            ax.set_yticks(range(len(cm)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Holdout confusion matrix (colour: row rate)", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
        return [Markdown("## Confusion matrix"), _image(fig, "holdout confusion matrix")]
    sample = ev.get("residuals") or {}
    y_true = np.asarray(sample.get("y_true") or [], dtype=float)
    y_pred = np.asarray(sample.get("y_pred") or [], dtype=float)
    if y_true.size == 0 or y_true.size != y_pred.size:
        return []
    fig, (left, right) = _figure(9, 3.6, ncols=2)
    left.scatter(y_true, y_pred, s=6, alpha=0.4, color="#3d5a80")
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([lo, hi], [lo, hi], color="#d1495b", linewidth=1)
    left.set_xlabel("y true")
    left.set_ylabel("y predicted")
    left.set_title("Predicted vs true", fontsize=10)
    right.scatter(y_pred, y_true - y_pred, s=6, alpha=0.4, color="#3d5a80")
    right.axhline(0, color="#d1495b", linewidth=1)
    right.set_xlabel("y predicted")
    right.set_ylabel("residual (true - predicted)")
    right.set_title("Residuals", fontsize=10)
    text = (f"Holdout r2 **{fmt_score(ev.get('r2', flow.metrics['merged'][key]))}**, "
            f"MAE {ev.get('mae', float('nan')):.4g}, RMSE {ev.get('rmse', float('nan')):.4g}; "
            f"plotted: a sample of {y_true.size:,} holdout rows.")
    return [Markdown("## Residuals"), Markdown(text), _image(fig, "residual plot")]


def _step_table(flow: Any, key: str) -> list:
    """Wall time and peak memory per step, to size workers and find the slow stage."""
    from metaflow.cards import Markdown, Table

    metrics, plan = flow.metrics, flow.plan
    steps = metrics.get("steps") or {}
    part_rows = sum(r["rows"] for r in metrics["partitions"])
    rows_for = {"partition": plan.get("rows"), "train": part_rows,
                "join": metrics.get("holdout_rows")}
    table = []
    for name, stat in steps.items():
        seconds, n = float(stat.get("seconds", 0.0)), rows_for.get(name)
        # join also merges and publishes, so rows/s would mislead there.
        rate = f"{n / seconds:,.0f}" if n and seconds > 0 and name != "join" else "-"
        if name == "partition" and plan.get("rows_per_second"):
            rate = f"{plan['rows_per_second']:,.0f}"
        table.append([name, f"{seconds:.2f}", f"{float(stat.get('peak_rss_mb', 0.0)):.0f}",
                      "-" if n is None else f"{n:,}", rate])
    fits = [[f"p{r['index']}", f"{r['rows']:,}", f"{r['fit_seconds']:.2f}",
             f"{r['rows'] / r['fit_seconds']:,.0f}" if r["fit_seconds"] > 0 else "-"]
            for r in metrics["partitions"]]
    out = [Markdown("## Steps and throughput")]
    if table:
        out.append(Table(table, headers=["step", "seconds", "peak RSS MB", "rows", "rows/s"]))
    out.append(Markdown("`partition` rows/s is the single streaming pass over the data; `train` is "
                        "the slowest partition's fit (tasks run in parallel); `join` rows are the "
                        "holdout rows it evaluates. Per-partition fit throughput:"))
    out.append(Table(fits, headers=["partition", "rows", "fit s", "rows/s"]))
    return out


SECTIONS: list[Section] = [_header, _spec_table, _partition_table, _score_chart,
                           _class_distribution, _feature_importances, _holdout_plot, _step_table]


def _figure(width: float, height: float, ncols: int = 1):
    """A figure outside pyplot's registry: nothing to leak even if drawing fails half-way."""
    import matplotlib

    matplotlib.use("Agg")  # Image.from_matplotlib imports pyplot: never let it pick a GUI backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _image(fig: Any, label: str) -> Any:
    """Embed the figure as a PNG and release it (from_matplotlib also closes it via pyplot)."""
    from metaflow.cards import Image

    try:
        return Image.from_matplotlib(fig, label=label)
    finally:
        fig.clear()


def _label(code: str, plan: dict) -> str:
    """Class counts are keyed by stored label codes; show the source's labels when it had strings."""
    values = plan.get("label_values")
    if values is None:
        return str(code)
    try:
        return str(values[int(code)])
    except (ValueError, IndexError, TypeError):
        return str(code)


def _class_counts_text(counts: dict | None, plan: dict) -> str:
    """'0: 250 · 1: 251' — short enough for a table cell."""
    if not counts:
        return "-"
    return " · ".join(f"{_label(k, plan)}: {int(v):,}" for k, v in counts.items())
