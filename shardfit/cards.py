"""The join step's card, the run's tags, and small join-side helpers."""

from __future__ import annotations

import numpy as np

from shardfit.partition import iter_array_chunks
from shardfit.storage import Storage


def load_calibration(plan: dict, storage: Storage) -> tuple[np.ndarray, np.ndarray] | None:
    """The calibration slice, for stacking mergers; small by construction (calibration_size)."""
    from shardfit.evaluate import decode_labels

    desc = plan.get("calibration")
    if not desc or not desc["rows"]:
        return None
    xs, ys = zip(*iter_array_chunks(desc, plan, storage), strict=True)
    return np.concatenate(xs), decode_labels(np.concatenate(ys), plan)


def tag_run(name: str, version: str) -> None:
    """Tag the run with model name and version so the UI and Client can filter by them."""
    from metaflow import Run, current, namespace

    try:
        namespace(None)
        Run(f"{current.flow_name}/{current.run_id}").add_tags([f"model:{name}", f"version:{version}"])
    except Exception as exc:  # noqa: BLE001 - tags are a convenience, never fail a publish for them
        print(f"join: could not tag run: {type(exc).__name__}: {exc}")


def report(flow) -> None:
    """Fill the join card: spec, per-partition table, scores, published version."""
    from metaflow import current
    from metaflow.cards import Markdown, Table

    from shardfit.evaluate import SCORE_KEY
    from shardfit.spec import summary

    key = SCORE_KEY[flow.kind]
    card = current.card["report"]
    card.append(Markdown(f"# {flow.resolved_spec['name']} — version `{flow.version}`"))
    card.append(Markdown(f"Merged holdout {key}: **{flow.metrics['merged'][key]:.4f}**  \nModel: `{flow.model_uri}`"))
    card.append(Table([[k, v] for k, v in summary(flow.resolved_spec)], headers=["spec", "value"]))
    rows = [[r["index"], r["rows"], str(r["class_counts"]), f"{r['fit_seconds']:.2f}",
             f"{r['peak_rss_mb']:.0f}", f"{r[key]:.4f}"] for r in flow.metrics["partitions"]]
    card.append(Table(rows, headers=["partition", "rows", "class counts", "fit s", "peak RSS MB", key]))
