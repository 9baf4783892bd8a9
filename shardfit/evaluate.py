"""Score a model on the holdout by streaming it, so evaluation never loads it whole."""

from __future__ import annotations

import numpy as np

from shardfit.partition import iter_array_chunks
from shardfit.storage import Storage

SCORE_KEY = {"classifier": "accuracy", "regressor": "r2"}


def decode_labels(y: np.ndarray, plan: dict) -> np.ndarray:
    """Stored labels are codes when the source labels were strings; give them back."""
    values = plan.get("label_values")
    if values is None:
        return y
    return np.asarray(values, dtype=object)[np.asarray(y, dtype=np.int64)]


def _positions(values: np.ndarray, index: dict) -> np.ndarray:
    """Each value's position in `index` (-1 if absent), looking up only the distinct values."""
    uniq, inverse = np.unique(np.asarray(values), return_inverse=True)
    return np.array([index.get(u, -1) for u in uniq.tolist()], dtype=np.int64)[inverse.ravel()]


def evaluate(model, plan: dict, storage: Storage, kind: str, which: str = "holdout", residual_sample: int = 2000) -> dict:
    """Accuracy and a confusion matrix for classifiers; r2, MAE and RMSE (plus a residual sample) for regressors."""
    desc = plan[which]
    if kind == "classifier":
        classes = list(decode_labels(np.asarray(plan["classes"]), plan)) if plan.get("classes") is not None else None
        index = {c: i for i, c in enumerate(classes)} if classes is not None else {}
        cm = np.zeros((len(index), len(index)), dtype=np.int64)
        correct = n = 0
        for X, y in iter_array_chunks(desc, plan, storage):
            y = decode_labels(y, plan)
            pred = model.predict(X)
            correct += int(np.sum(pred == y))
            n += len(y)
            t, p = _positions(y, index), _positions(pred, index)
            ok = (t >= 0) & (p >= 0)
            cm += np.bincount(t[ok] * len(index) + p[ok], minlength=cm.size).reshape(cm.shape)
        return {
            "accuracy": correct / max(n, 1),
            "rows": n,
            "confusion_matrix": cm.tolist(),
            "classes": [c.item() if hasattr(c, "item") else c for c in (classes or [])],
        }
    s_y = s_y2 = s_res2 = s_abs = 0.0
    n = 0
    rng = np.random.default_rng(0)
    sample_t: list[float] = []
    sample_p: list[float] = []
    for X, y in iter_array_chunks(desc, plan, storage):
        y = y.astype(np.float64)
        pred = np.asarray(model.predict(X), dtype=np.float64)
        res = y - pred
        s_y += y.sum()
        s_y2 += (y * y).sum()
        s_res2 += (res * res).sum()
        s_abs += np.abs(res).sum()
        n += len(y)
        if len(sample_t) < residual_sample:
            take = rng.choice(len(y), size=min(len(y), residual_sample - len(sample_t)), replace=False)
            sample_t += y[take].tolist()
            sample_p += pred[take].tolist()
    ss_tot = s_y2 - (s_y * s_y) / max(n, 1)
    return {
        "r2": 1.0 - s_res2 / ss_tot if ss_tot > 0 else 0.0,
        "mae": s_abs / max(n, 1),
        "rmse": float(np.sqrt(s_res2 / max(n, 1))),
        "rows": n,
        "residuals": {"y_true": sample_t, "y_pred": sample_p},
    }
