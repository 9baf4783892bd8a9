"""Streaming evaluation agrees with scikit-learn's own metrics on the holdout rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.tree import DecisionTreeClassifier

from shardfit import spec as spec_mod
from shardfit.evaluate import evaluate
from shardfit.partition import partition
from shardfit.storage import LocalStorage


def test_accuracy_and_confusion_matrix_match_sklearn(tmp_path: Path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)  # three classes
    np.savez(tmp_path / "d.npz", X=X, y=y)
    spec = spec_mod.resolve({
        "name": "t", "data": {"source": str(tmp_path / "d.npz"), "partitions": 2, "chunk_rows": 700},
        "model": {"module": "sklearn.tree", "class": "DecisionTreeClassifier"}, "output": "unused",
    })
    storage = LocalStorage(str(tmp_path / "out"))
    plan = partition(spec, storage, "p", classification=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[:500], y[:500])
    got = evaluate(model, plan, storage, "classifier")
    Xh = np.load(plan["holdout"]["X"])
    yh = np.load(plan["holdout"]["y"])
    pred = model.predict(Xh)
    assert got["rows"] == len(yh)
    assert got["accuracy"] == accuracy_score(yh, pred)
    assert got["confusion_matrix"] == confusion_matrix(yh, pred, labels=[0, 1, 2]).tolist()
