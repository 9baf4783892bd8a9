"""Checks and class alignment shared by every merger.

Each merger may see sub-models that learned different subsets of the classes,
or that should never have been merged at all (unfitted, mixed kinds,
different inputs); these helpers say so in one line, before any merging.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from shardfit.errors import MergeError


def check_models(models: list, same_class: bool = False) -> list:
    """The models as a list: non-empty, fitted, all classifiers or all regressors, same inputs."""
    if models is None or len(models) == 0:
        raise MergeError("no sub-models to merge: the list is empty")
    models = list(models)
    for i, m in enumerate(models):
        try:
            check_is_fitted(m)
        except NotFittedError:
            raise MergeError(f"sub-model {i} ({type(m).__name__}) is not fitted") from None
        except TypeError:
            raise MergeError(f"sub-model {i} is a {type(m).__name__}, not a scikit-learn estimator") from None
    if same_class:
        kinds = {type(m) for m in models}
        if len(kinds) > 1:
            raise MergeError(f"sub-models must all be of one class to merge, got {sorted(k.__name__ for k in kinds)}")
    kinds = {"classifier" if is_classifier(m) else "regressor" if is_regressor(m) else "other" for m in models}
    if len(kinds) > 1 or "other" in kinds:
        names = sorted({type(m).__name__ for m in models})
        raise MergeError(f"sub-models must be all classifiers or all regressors, got {names}")
    common_inputs(models)
    return models


def common_inputs(models: list) -> tuple[int | None, np.ndarray | None]:
    """The shared n_features_in_ and feature_names_in_ of fitted models (MergeError when they differ)."""
    widths = {getattr(m, "n_features_in_", None) for m in models} - {None}
    if len(widths) > 1:
        raise MergeError(f"sub-models were fitted on different numbers of features: {sorted(widths)}")
    names = [getattr(m, "feature_names_in_", None) for m in models]
    for i, n in enumerate(names[1:], start=1):
        if (n is None) != (names[0] is None) or (n is not None and not np.array_equal(n, names[0])):
            raise MergeError(f"sub-model {i} was fitted on different feature names than sub-model 0")
    return (widths.pop() if widths else None), names[0]


def global_classes(models: list, given: Any = None) -> np.ndarray:
    """The merged class set: the caller's (checked to cover every sub-model) or the sorted union."""
    union = np.unique(np.concatenate([np.asarray(m.classes_) for m in models]))
    if given is None:
        return union
    classes = np.unique(np.asarray(given))
    if classes.ndim != 1 or classes.size == 0:
        raise MergeError("context 'classes' must be a non-empty 1-d list of labels")
    missing = union[~np.isin(union, classes)]
    if missing.size:
        raise MergeError(
            f"sub-models know classes {missing.tolist()} that are not in the global class set {classes.tolist()}"
        )
    return classes


def class_columns(classes: np.ndarray, labels: Any) -> np.ndarray:
    """Column of each label in the sorted `classes` (MergeError for an unknown label)."""
    labels = np.asarray(labels)
    cols = np.searchsorted(classes, labels)
    ok = cols < len(classes)
    ok[ok] = classes[cols[ok]] == labels[ok]
    if not ok.all():
        raise MergeError(f"labels {np.unique(labels[~ok]).tolist()} are not in the merged classes {classes.tolist()}")
    return cols.astype(np.intp)
