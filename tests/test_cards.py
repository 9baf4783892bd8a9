"""The join card, checked in the HTML a user opens: rendered from real runs, plus one fast unit test.

A blank card's HTML carries its components as base64 JSON that the card's JavaScript draws,
so the assertions decode that payload instead of grepping the raw page.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import FLOW, flow_env, run_flow, small_spec, write_spec

from shardfit import cards

PAYLOAD = re.compile(r'window\.__MF_DATA__\["[^"]+"\] = "([A-Za-z0-9+/=]+)"')
RUN_ID = re.compile(r"Workflow starting \(run-id (\w+)")
PNG = "data:image/png;base64,"


def card_payload(html: str) -> str:
    """The card's components as JSON text (what the page's JavaScript renders)."""
    match = PAYLOAD.search(html)
    assert match, "no card payload in the HTML"
    return base64.b64decode(match.group(1)).decode("utf-8")


def tables(payload: str) -> list[dict]:
    """Every table component in the payload, nested ones included."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "table":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(payload))
    return found


def regressor_spec(tmp_path: Path) -> dict:
    """RandomForestRegressor on make_regression: small enough to fit in a second."""
    spec = small_spec(tmp_path, name="tiny-reg")
    spec["data"] = {"source": "sklearn.datasets:make_regression",
                    "params": {"n_samples": 1500, "n_features": 6, "noise": 5.0, "random_state": 0},
                    "test_size": 0.25, "partitions": 2, "seed": 7}
    spec["model"] = {"module": "sklearn.ensemble", "class": "RandomForestRegressor",
                     "parameters": {"n_estimators": 5, "random_state": 0}}
    return spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    """One classifier and one regressor run, started together: each is mostly task start-up.

    The classifier runs from its own temp dir, as a user would. The regressor runs from the
    datastore sysroot: Metaflow 2.19 writes local cards under <cwd>/.metaflow/mf.cards while
    get_cards reads <ds-root>/mf.cards, and ds-root follows METAFLOW_DATASTORE_SYSROOT_LOCAL
    (Netflix/metaflow#2139; METAFLOW_CARD_LOCALROOT does not help in 2.19, get_storage_root
    drops it). Running from the sysroot makes the two agree, so the Client can read its card.
    """
    from metaflow import Run, namespace

    sysroot = Path(os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"])
    jobs = {}
    for kind, make, cwd in (("classifier", small_spec, None), ("regressor", regressor_spec, sysroot)):
        tmp = tmp_path_factory.mktemp(kind)
        path = write_spec(tmp, make(tmp))
        jobs[kind] = (tmp, subprocess.Popen(
            [sys.executable, str(FLOW), "run", "--spec", str(path)], cwd=str(cwd or tmp),
            env=flow_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = {kind: proc.communicate(timeout=300)[0] for kind, (_, proc) in jobs.items()}
    namespace(None)
    out = {}
    for kind, (tmp, proc) in jobs.items():
        assert proc.returncode == 0, logs[kind][-4000:]
        out[kind] = (Run(f"DistributedTrainingFlow/{RUN_ID.search(logs[kind]).group(1)}"), tmp)
    return out


def test_classifier_card_via_card_get(runs) -> None:
    """`card get` writes the HTML; it shows every partition, the merged score, version and plots."""
    run, tmp = runs["classifier"]
    out = tmp / "card.html"
    proc = run_flow(["card", "get", f"{run.id}/join", "--id", "report", str(out)], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = card_payload(out.read_text())

    metrics = run.data.metrics
    assert cards.fmt_score(metrics["merged"]["accuracy"]) in payload
    assert run.data.version in payload
    assert run.data.model_uri in payload
    parts = next(t for t in tables(payload) if t.get("columns", [])[:3] == ["partition", "rows", "class counts"])
    assert [row[1] for row in parts["data"]] == [f"{r['rows']:,}" for r in metrics["partitions"]]
    assert [row[5] for row in parts["data"]] == [cards.fmt_score(r["accuracy"]) for r in metrics["partitions"]]
    assert payload.count(PNG) >= 3
    for section in ("## Spec", "## Scores", "## Class distribution", "## Feature importances",
                    "## Confusion matrix", "## Steps and throughput"):
        assert section in payload
    assert "## Residuals" not in payload


def test_regressor_card_via_client(runs) -> None:
    """A regressor's card has r2 and a residual plot, read back with the Client's get_cards."""
    from metaflow.cards import get_cards

    run, _ = runs["regressor"]
    found = get_cards(run["join"].task, id="report")
    assert len(found) == 1
    payload = card_payload(found[0].get())
    metrics = run.data.metrics
    assert "holdout r2" in payload
    assert cards.fmt_score(metrics["merged"]["r2"]) in payload
    assert run.data.version in payload
    parts = next(t for t in tables(payload) if t.get("columns", [])[:3] == ["partition", "rows", "fit s"])
    assert [row[1] for row in parts["data"]] == [f"{r['rows']:,}" for r in metrics["partitions"]]
    assert "## Residuals" in payload and "residual plot" in payload
    assert "## Class distribution" not in payload and "## Confusion matrix" not in payload
    assert payload.count(PNG) >= 3


class FakeCard(list):
    """Stands in for current.card: report() only appends."""

    def __getitem__(self, key):  # type: ignore[override]
        return self if key == "report" else super().__getitem__(key)


def test_report_skips_missing_pieces_quickly(monkeypatch, capsys) -> None:
    """No feature_importances_, no residual sample, no step stats: fewer sections, never an error.

    Missing pieces must be skipped on purpose, not by report()'s catch-all (which logs "skipped").
    """
    import metaflow

    records = [{"index": i, "rows": 1000 + i, "class_counts": None, "fit_seconds": 0.5,
                "peak_rss_mb": 100.0, "r2": 0.5 + i / 10, "random_state": i, "attempt": 0}
               for i in range(3)]
    flow = SimpleNamespace(
        kind="regressor",
        resolved_spec={"name": "m", "data": {"source": "x:y", "partitioning": "shuffle", "partitions": 3,
                                             "test_size": 0.25},
                       "model": {"module": "sklearn.linear_model", "class": "Ridge", "parameters": {},
                                 "tree_budget": "per_worker"},
                       "merger": {"module": "mergers.linear", "path": None, "function": "average"},
                       "output": {"location": "/tmp/m", "format": "joblib"}, "compute": {}},
        plan={"classes": None, "feature_names": None, "rows": 4000, "rows_per_second": 1e5},
        metrics={"merged": {"r2": 0.61}, "partitions": records, "n_estimators": None,
                 "holdout_rows": 1000, "merge_seconds": 0.01},
        evaluation={"r2": 0.61, "rows": 1000, "residuals": {"y_true": [], "y_pred": []}},
        model=object(), version="v1", model_uri="/tmp/m/v1/model.joblib",
    )
    card = FakeCard()
    monkeypatch.setattr(metaflow, "current", SimpleNamespace(card=card))
    cards.report(flow)
    kinds = [type(c).__name__ for c in card]
    assert "Image" in kinds  # the score chart needs nothing optional
    assert kinds.count("Image") == 1
    # and a classifier whose model has importances but whose plan has no names
    flow.kind = "classifier"
    flow.metrics["merged"] = {"accuracy": 0.9}
    for r in records:
        r["accuracy"], r["class_counts"] = 0.9, {"0": 500, "1": 500 + r["index"]}
    flow.model = SimpleNamespace(feature_importances_=np.array([0.2, 0.5, 0.3]))
    flow.evaluation = {"accuracy": 0.9, "rows": 10, "confusion_matrix": [[4, 1], [0, 5]], "classes": [0, 1]}
    card.clear()
    started = time.time()  # imports are warm now: this is the drawing itself
    cards.report(flow)
    assert time.time() - started < 2.0
    assert [type(c).__name__ for c in card].count("Image") == 4
    assert "skipped" not in capsys.readouterr().out
