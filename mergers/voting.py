"""Merge sub-models that share no tree structure by voting over their predictions.

HistGradientBoosting, linear models, SVMs... cannot be pooled member by member
like forests, but their predictions can be averaged. A partition that never
saw class `c` has no probability column for `c`, so every sub-model's columns
are placed into the global `classes_` (0 for unseen classes) before averaging.

"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from mergers._common import check_models, class_columns, common_inputs, global_classes
from shardfit.errors import MergeError

_VOTING = ("auto", "soft", "hard")


def combine_voting(models: list, **context: Any) -> BaseEstimator:
    """A voting ensemble over copies of the sub-models (soft when all have predict_proba, else hard).

    Context used: `classes` (global class set), `weights` (partition row counts,
    applied only when `params.weight_by_rows` is true; equal weights otherwise),
    `params.voting` ("auto", "soft" or "hard").
    """
    models = check_models(models)
    params = context.get("params") or {}
    weights = None
    if params.get("weight_by_rows"):
        weights = context.get("weights")
        if weights is None:
            raise MergeError("params.weight_by_rows is set but the flow passed no partition weights")
    copies = [copy.deepcopy(m) for m in models]
    if is_classifier(models[0]):
        return VotingMergedClassifier.from_fitted(
            copies, weights=weights, voting=params.get("voting", "auto"), classes=context.get("classes")
        )
    return VotingMergedRegressor.from_fitted(copies, weights=weights)


combine_voting.estimator_types = ("classifier", "regressor")


def soft_vote(models: list, **context: Any) -> BaseEstimator:
    """Soft voting only: refuse sub-models without predict_proba rather than fall back to hard votes."""
    models = check_models(models)
    if not is_classifier(models[0]):
        raise MergeError(f"soft_vote merges classifiers only, got {type(models[0]).__name__}")
    lacking = [f"{i} ({type(m).__name__})" for i, m in enumerate(models) if not hasattr(m, "predict_proba")]
    if lacking:
        raise MergeError(
            f"soft_vote needs predict_proba, which sub-models {', '.join(lacking)} lack; "
            "use mergers.voting:combine_voting for hard voting"
        )
    params = context.get("params") or {}
    weights = context.get("weights") if params.get("weight_by_rows") else None
    return VotingMergedClassifier.from_fitted(
        [copy.deepcopy(m) for m in models], weights=weights, voting="soft", classes=context.get("classes")
    )


soft_vote.estimator_types = ("classifier",)


def _check_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise MergeError(f"got {w.size} weights for {n} sub-models")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MergeError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w


class _PrefitVoting(BaseEstimator):
    """Shared plumbing: adopt already-fitted sub-estimators, or refit clones in `fit`."""

    def _estimator_list(self) -> list:
        if not self.estimators:
            raise ValueError(f"{type(self).__name__} needs a non-empty list of estimators")
        return list(self.estimators)

    def _adopt(self, fitted: list) -> _PrefitVoting:
        self.weights_ = _check_weights(self.weights, len(fitted))
        n_features, names = common_inputs(fitted)
        if n_features is not None:
            self.n_features_in_ = n_features
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.estimators_ = list(fitted)
        return self

    def __sklearn_tags__(self) -> Any:
        # The ensemble accepts what every sub-estimator accepts.
        tags = super().__sklearn_tags__()
        ests = list(self.estimators or [])
        if ests:
            sub = [get_tags(e) for e in ests]
            tags.input_tags.sparse = all(t.input_tags.sparse for t in sub)
            tags.input_tags.allow_nan = all(t.input_tags.allow_nan for t in sub)
            tags.target_tags.multi_output = all(t.target_tags.multi_output for t in sub)
        return tags

    @classmethod
    def from_fitted(cls, estimators: list, **params: Any) -> _PrefitVoting:
        """A fitted instance over `estimators` as they are (no refit): the merge path."""
        obj = cls(estimators=list(estimators), **params)
        return obj._adopt(obj.estimators)


def _soft(self: VotingMergedClassifier) -> bool:
    return self._resolved_voting() == "soft"


class VotingMergedClassifier(ClassifierMixin, _PrefitVoting):
    """Soft (class-aligned, weighted) or hard (weighted) vote over fitted classifiers.

    `fit(X, y)` follows scikit-learn: it refits a clone of every estimator on
    the same data. The merger instead builds it with `from_fitted`, which
    adopts the partition models without refitting.
    """

    def __init__(
        self,
        estimators: list | None = None,
        weights: Any = None,
        voting: str = "auto",
        classes: Any = None,
    ):
        self.estimators = estimators
        self.weights = weights
        self.voting = voting
        self.classes = classes

    def fit(self, X: Any, y: Any) -> VotingMergedClassifier:
        """Refit a clone of each estimator on (X, y)."""
        check_classification_targets(y)
        return self._adopt([clone(e).fit(X, y) for e in self._estimator_list()])

    def _adopt(self, fitted: list) -> VotingMergedClassifier:
        if self.voting not in _VOTING:
            raise MergeError(f"voting must be one of {_VOTING}, got {self.voting!r}")
        lacking = [type(e).__name__ for e in fitted if not hasattr(e, "predict_proba")]
        if self.voting == "soft" and lacking:
            raise MergeError(f"soft voting needs predict_proba, which {sorted(set(lacking))} lack")
        for i, e in enumerate(fitted):
            if not is_classifier(e) or not hasattr(e, "classes_"):
                raise MergeError(f"estimator {i} ({type(e).__name__}) is not a fitted classifier")
        super()._adopt(fitted)
        self.classes_ = global_classes(fitted, self.classes)
        self.voting_ = "hard" if self.voting == "hard" or lacking else "soft"
        return self

    def _resolved_voting(self) -> str:
        if hasattr(self, "voting_"):
            return self.voting_
        ests = self.estimators or []
        if self.voting == "auto":
            return "soft" if ests and all(hasattr(e, "predict_proba") for e in ests) else "hard"
        return self.voting

    @available_if(_soft)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Weighted mean of the sub-models' probabilities, each placed in the merged class columns."""
        check_is_fitted(self)
        aligned = []
        for est in self.estimators_:
            proba = est.predict_proba(X)
            cols = np.zeros((proba.shape[0], len(self.classes_)), dtype=np.float64)
            cols[:, class_columns(self.classes_, est.classes_)] = proba
            aligned.append(cols)
        return np.average(np.stack(aligned), axis=0, weights=self.weights_)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class (soft) or the class with the largest weighted vote (hard)."""
        check_is_fitted(self)
        if self.voting_ == "soft":
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        weights = np.ones(len(self.estimators_)) if self.weights_ is None else self.weights_
        votes = None
        for w, est in zip(weights, self.estimators_, strict=True):
            cols = class_columns(self.classes_, est.predict(X))
            if votes is None:
                votes = np.zeros((len(cols), len(self.classes_)), dtype=np.float64)
            votes[np.arange(len(cols)), cols] += w
        return self.classes_[np.argmax(votes, axis=1)]


class VotingMergedRegressor(RegressorMixin, _PrefitVoting):
    """Weighted mean of fitted regressors' predictions.

    `fit(X, y)` refits a clone of every estimator; the merger uses `from_fitted`.
    """

    def __init__(self, estimators: list | None = None, weights: Any = None):
        self.estimators = estimators
        self.weights = weights

    def fit(self, X: Any, y: Any) -> VotingMergedRegressor:
        """Refit a clone of each estimator on (X, y)."""
        return self._adopt([clone(e).fit(X, y) for e in self._estimator_list()])

    def _adopt(self, fitted: list) -> VotingMergedRegressor:
        for i, e in enumerate(fitted):
            if not is_regressor(e):
                raise MergeError(f"estimator {i} ({type(e).__name__}) is not a regressor")
        return super()._adopt(fitted)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        preds = np.stack([np.asarray(e.predict(X), dtype=np.float64) for e in self.estimators_])
        return np.average(preds, axis=0, weights=self.weights_)
