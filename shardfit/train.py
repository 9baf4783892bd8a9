"""Fit one partition's sub-model and record what a user needs to trust it."""

from __future__ import annotations

import resource
import time

from shardfit import estimator as est_mod
from shardfit import faults
from shardfit.evaluate import SCORE_KEY, decode_labels, evaluate
from shardfit.partition import load_part
from shardfit.storage import Storage


def peak_rss_mb() -> float:
    """This process's own peak resident memory, in MB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and
    execve, so every Metaflow task would report at least the runtime's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fit_partition(spec: dict, plan: dict, desc: dict, storage: Storage, kind: str, attempt: int = 0) -> tuple[object, dict]:
    """Build this worker's estimator (own seed), fit it on its partition, score it on the holdout."""
    n_parts = desc["of"]
    params = est_mod.worker_params(spec["model"], desc["index"], n_parts, spec["data"]["seed"])
    model = est_mod.build(spec["model"], params)
    X, y, cleanups = load_part(desc, plan, spec["data"], storage)
    try:
        y = decode_labels(y, plan)
        faults.maybe_crash_train(desc["index"], attempt)
        started = time.monotonic()
        model.fit(X, y)
        fit_seconds = time.monotonic() - started
    finally:
        del X, y
        for c in cleanups:
            c()
    scores = evaluate(model, plan, storage, kind)
    key = SCORE_KEY[kind]
    record = {
        "index": desc["index"],
        "rows": desc["rows"],
        "class_counts": desc["class_counts"],
        "fit_seconds": fit_seconds,
        "peak_rss_mb": peak_rss_mb(),
        key: scores[key],
        "n_estimators": est_mod.tree_count(model),
        "random_state": params.get("random_state"),
        "attempt": attempt,
    }
    return model, record
