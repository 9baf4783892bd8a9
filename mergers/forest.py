"""Merge per-partition random forests, extra trees and bagging ensembles into one estimator.

A tree ensemble's prediction is a mean over its members, so P fitted
sub-ensembles can become one by pooling their members, provided every member
speaks the same class language. A partition that never saw class `c` grew
trees whose probability columns skip `c`, so each tree is rebuilt with its
value array spread over the global class set (zeros for unseen classes).
Concatenating `estimators_` without that step (the operator's recipe, kept
below as `naive_concat`) silently mislabels or crashes.

"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import BaseDecisionTree
from sklearn.tree._tree import Tree
from sklearn.utils.metaestimators import available_if

from mergers._common import check_models, class_columns, global_classes
from shardfit.errors import MergeError

SUPPORTED = (
    RandomForestClassifier,
    ExtraTreesClassifier,
    RandomForestRegressor,
    ExtraTreesRegressor,
    BaggingClassifier,
    BaggingRegressor,
)

# Fitted state that describes one partition's rows (out-of-bag scores, bootstrap
# draws): it does not hold for the merged model, so it is dropped rather than
# left to answer with another partition's row indices. `estimators_samples_`
# therefore raises AttributeError on a merged model.
_PARTITION_STATE = frozenset(
    {
        "oob_score_",
        "oob_decision_function_",
        "oob_prediction_",
        "_n_samples",
        "_n_samples_bootstrap",
        "_sample_weight",
        "_seeds",
        "_max_samples",
        "_max_features",
    }
)
_REBUILT = frozenset({"estimators_", "estimators_features_", "classes_", "n_classes_"})


def combine_forests(models: list, **context: Any) -> BaseEstimator:
    """One fitted ensemble of the sub-models' class whose members are all the sub-models' members.

    Classifier probabilities equal the tree-count-weighted mean of the
    sub-models' class-aligned probabilities. Context used: `classes` (the
    global class set; defaults to the union of the sub-models' classes).
    Inputs are never mutated: every member is copied or rebuilt.
    """
    models = check_models(models, same_class=True)
    first = models[0]
    if not isinstance(first, SUPPORTED):
        raise MergeError(
            f"combine_forests merges RandomForest, ExtraTrees and Bagging ensembles, not {type(first).__name__}; "
            "use mergers.voting:combine_voting or mergers.stacking:combine_stacking"
        )
    outputs = {getattr(m, "n_outputs_", 1) for m in models}
    if len(outputs) > 1:
        raise MergeError(f"sub-models disagree on the number of outputs: {sorted(outputs)}")
    classes = None
    if is_classifier(first):
        if outputs != {1}:
            raise MergeError("combine_forests does not merge multi-output classifiers (one target column only)")
        classes = global_classes(models, context.get("classes"))
    if isinstance(first, BaggingClassifier | BaggingRegressor):
        return _merge_bagging(models, classes)
    return _merge_forest(models, classes)


combine_forests.estimator_types = ("classifier", "regressor")


def naive_concat(models: list, **context: Any) -> BaseEstimator:
    """BROKEN on purpose: the operator's recipe, kept only to benchmark against.

    It appends every forest's trees to a copy of the first one without class
    alignment. When partitions saw different classes, the other forests' trees
    answer in their own column order under the first forest's `classes_`, so
    predictions are silently mislabelled, or `predict_proba` crashes on a
    shape mismatch. Do not use it as a merger.
    """
    rf_a = copy.deepcopy(models[0])
    for rf in models[1:]:
        rf_a.estimators_ += copy.deepcopy(rf.estimators_)
    rf_a.n_estimators = len(rf_a.estimators_)
    return rf_a


naive_concat.estimator_types = ("classifier", "regressor")


def _shell(model: BaseEstimator) -> BaseEstimator:
    """A copy of `model` without its members or partition-specific state, ready to receive merged members."""
    merged = object.__new__(type(model))
    merged.__dict__.update(
        {k: copy.deepcopy(v) for k, v in vars(model).items() if k not in _PARTITION_STATE | _REBUILT}
    )
    return merged


def _assemble(first: BaseEstimator, members: list, classes: np.ndarray | None) -> BaseEstimator:
    """An unfitted copy of the first model's class and parameters, holding every member."""
    merged = _shell(first)
    merged.estimators_ = members
    merged.n_estimators = len(members)
    if classes is not None:
        merged.classes_ = classes.copy()
        merged.n_classes_ = len(classes)
    return merged


def _merge_forest(models: list, classes: np.ndarray | None) -> BaseEstimator:
    trees = []
    for m in models:
        if classes is None:
            trees.extend(copy.deepcopy(m.estimators_))
            continue
        cols = class_columns(classes, np.asarray(m.classes_))
        for tree in m.estimators_:
            # Forest trees are fitted on class indices (0.0, 1.0, ...) of their forest.
            local = np.asarray(tree.classes_).astype(np.intp)
            trees.append(align_tree(tree, cols[local], len(classes)))
    return _assemble(models[0], trees, classes)


def _merge_bagging(models: list, classes: np.ndarray | None) -> BaseEstimator:
    members, features = [], []
    for m in models:
        features.extend(np.array(f, copy=True) for f in m.estimators_features_)
        if classes is None:
            members.extend(copy.deepcopy(m.estimators_))
            continue
        cols = class_columns(classes, np.asarray(m.classes_))
        for est in m.estimators_:
            if not hasattr(est, "classes_"):
                raise MergeError(f"bagged base estimator {type(est).__name__} has no classes_; cannot align classes")
            # Bagged members are fitted on class indices of their own ensemble.
            local = np.asarray(est.classes_).astype(np.intp)
            if isinstance(est, BaseDecisionTree):
                members.append(align_tree(est, cols[local], len(classes)))
            else:
                members.append(AlignedBaseClassifier(copy.deepcopy(est), cols[local], len(classes)))
    merged = _assemble(models[0], members, classes)
    merged.estimators_features_ = features
    return merged


def align_tree(tree: BaseDecisionTree, columns: np.ndarray, n_classes: int) -> BaseDecisionTree:
    """A copy of a fitted classification tree whose leaf values span `n_classes` columns.

    Column j of the tree's values moves to column `columns[j]`; the other
    columns are 0, so the tree gives probability 0 to classes it never saw.
    Its `classes_` become the global class indices 0..n_classes-1, which is
    what forests and bagging expect of their members.
    """
    if tree.n_outputs_ != 1:
        raise MergeError("combine_forests does not merge multi-output classification trees")
    state = tree.tree_.__getstate__()
    values = np.asarray(state["values"])
    if values.shape[2] != len(columns):
        raise MergeError(f"a tree has {values.shape[2]} value columns but {len(columns)} classes")
    aligned_values = np.zeros((values.shape[0], values.shape[1], n_classes), dtype=np.float64)
    aligned_values[:, :, columns] = values
    new_tree = Tree(tree.tree_.n_features, np.array([n_classes], dtype=np.intp), tree.tree_.n_outputs)
    new_tree.__setstate__({**state, "values": aligned_values})
    aligned = object.__new__(type(tree))
    aligned.__dict__.update({k: copy.deepcopy(v) for k, v in vars(tree).items() if k != "tree_"})
    aligned.tree_ = new_tree
    aligned.classes_ = np.arange(n_classes).astype(np.asarray(tree.classes_).dtype)
    aligned.n_classes_ = np.intp(n_classes)
    aligned.n_outputs_ = 1
    return aligned


def _inner_has(attr: str):
    return lambda self: hasattr(self.estimator, attr)


class AlignedBaseClassifier:
    """A bagged non-tree classifier re-indexed to the merged class set.

    Bagging members answer in class indices of their own ensemble; this wrapper
    maps them to indices of the merged `classes_` (probability 0 for unseen
    classes). It hides `decision_function`, whose shape depends on how many
    classes a member saw and so cannot be aligned.
    """

    def __init__(self, estimator: Any, columns: np.ndarray, n_classes: int):
        self.estimator = estimator
        self.columns = np.asarray(columns, dtype=np.intp)
        self.classes_ = np.arange(n_classes)

    def predict(self, X: Any, **params: Any) -> np.ndarray:
        pred = self.estimator.predict(X, **params)
        return self.columns[np.searchsorted(self.estimator.classes_, pred)]

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X: Any, **params: Any) -> np.ndarray:
        proba = self.estimator.predict_proba(X, **params)
        out = np.zeros((proba.shape[0], len(self.classes_)), dtype=np.float64)
        out[:, self.columns] = proba
        return out

    @available_if(_inner_has("predict_proba"))
    def predict_log_proba(self, X: Any, **params: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X, **params))
