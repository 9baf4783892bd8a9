"""Merge sub-models by learning how much to trust each one, on held-out calibration rows.

Averaging treats a partition that saw two classes like one that saw all of
them. A meta-learner fitted on the sub-models' class-aligned outputs for rows
none of them trained on can learn which sub-model to believe where, so it
needs those rows: the flow holds them out when the spec sets
`merger.calibration_size`.

"""

from __future__ import annotations

import copy
import importlib
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from mergers._common import check_models, class_columns, common_inputs
from shardfit.errors import MergeError


def combine_stacking(models: list, **context: Any) -> BaseEstimator:
    """A meta-learner over copies of the sub-models, fitted on `context["calibration"]`.

    Classifiers: LogisticRegression on the concatenated class-aligned
    predict_proba of the sub-models (one-hot predictions for sub-models without
    predict_proba). Regressors: RidgeCV on the sub-models' predictions.
    `params.final_estimator` ("module:Class") and `params.final_estimator_params`
    (dict) replace the meta-learner.
    """
    models = check_models(models)
    calibration = context.get("calibration")
    if calibration is None or len(calibration) != 2 or calibration[0] is None or len(calibration[0]) == 0:
        raise MergeError(
            "combine_stacking needs held-out calibration rows: set merger.calibration_size (e.g. 0.1) in the spec"
        )
    X_cal, y_cal = calibration
    if len(X_cal) != len(y_cal):
        raise MergeError(f"calibration X has {len(X_cal)} rows but y has {len(y_cal)}")
    params = context.get("params") or {}
    final = _final_estimator(params)
    copies = [copy.deepcopy(m) for m in models]
    if is_classifier(models[0]):
        merged: BaseEstimator = StackedMergedClassifier(copies, final_estimator=final, classes=context.get("classes"))
    else:
        merged = StackedMergedRegressor(copies, final_estimator=final)
    try:
        return merged.fit(X_cal, y_cal)
    except MergeError:
        raise
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        raise MergeError(f"the stacking meta-learner cannot be fitted on the calibration rows: {msg}") from None


combine_stacking.estimator_types = ("classifier", "regressor")


def _final_estimator(params: dict) -> BaseEstimator | None:
    spec = params.get("final_estimator")
    if spec is None:
        return None
    if not isinstance(spec, str) or ":" not in spec:
        raise MergeError(f"params.final_estimator must be 'module:Class', got {spec!r}")
    module, _, name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MergeError(f"params.final_estimator: cannot load '{spec}' ({exc})") from None
    try:
        return cls(**(params.get("final_estimator_params") or {}))
    except TypeError as exc:
        raise MergeError(f"params.final_estimator_params: {exc}") from None


def _check_prefit(estimators: Any) -> list:
    if not estimators:
        raise ValueError("needs a non-empty list of fitted estimators")
    for i, e in enumerate(estimators):
        try:
            check_is_fitted(e)
        except NotFittedError:
            raise NotFittedError(
                f"estimator {i} ({type(e).__name__}) is not fitted: stacking fits only the meta-learner "
                "on top of already-fitted sub-models"
            ) from None
    return list(estimators)


class _PrefitStacking(BaseEstimator):
    """Shared plumbing: sub-models stay frozen; `fit` fits only the meta-learner (like cv="prefit")."""

    def _adopt_inputs(self, estimators: list) -> None:
        n_features, names = common_inputs(estimators)
        if n_features is not None:
            self.n_features_in_ = n_features
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.estimators_ = estimators


def _final_has(attr: str):
    def check(self: Any) -> bool:
        final = getattr(self, "final_estimator_", None)
        if final is None:
            final = self.final_estimator if self.final_estimator is not None else LogisticRegression()
        return hasattr(final, attr)

    return check


class StackedMergedClassifier(ClassifierMixin, _PrefitStacking):
    """Meta-classifier over frozen sub-classifiers' class-aligned probabilities.

    `fit(X, y)` fits only `final_estimator` (default LogisticRegression) on
    held-out rows; the sub-models in `estimators` must already be fitted.
    """

    def __init__(self, estimators: list | None = None, final_estimator: Any = None, classes: Any = None):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.classes = classes

    def fit(self, X: Any, y: Any) -> StackedMergedClassifier:
        estimators = _check_prefit(self.estimators)
        check_classification_targets(y)
        y = np.asarray(y)
        self._adopt_inputs(estimators)
        union = np.unique(np.concatenate([np.asarray(e.classes_) for e in estimators] + [np.unique(y)]))
        if self.classes is None:
            self.classes_ = union
        else:
            self.classes_ = np.unique(np.asarray(self.classes))
            missing = union[~np.isin(union, self.classes_)]
            if missing.size:
                raise MergeError(
                    f"classes {missing.tolist()} (in sub-models or calibration labels) are not in "
                    f"the global class set {self.classes_.tolist()}"
                )
        final = LogisticRegression(max_iter=1000) if self.final_estimator is None else clone(self.final_estimator)
        self.final_estimator_ = final.fit(self._meta_features(X), y)
        return self

    def _meta_features(self, X: Any) -> np.ndarray:
        blocks = []
        for est in self.estimators_:
            if hasattr(est, "predict_proba"):
                proba = est.predict_proba(X)
                block = np.zeros((proba.shape[0], len(self.classes_)), dtype=np.float64)
                block[:, class_columns(self.classes_, est.classes_)] = proba
            else:
                cols = class_columns(self.classes_, est.predict(X))
                block = np.zeros((len(cols), len(self.classes_)), dtype=np.float64)
                block[np.arange(len(cols)), cols] = 1.0
            blocks.append(block)
        return np.hstack(blocks)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.final_estimator_.predict(self._meta_features(X)))

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """The meta-learner's probabilities in the merged class columns (0 for classes it never saw)."""
        check_is_fitted(self)
        proba = self.final_estimator_.predict_proba(self._meta_features(X))
        out = np.zeros((proba.shape[0], len(self.classes_)), dtype=np.float64)
        out[:, class_columns(self.classes_, self.final_estimator_.classes_)] = proba
        return out


class StackedMergedRegressor(RegressorMixin, _PrefitStacking):
    """Meta-regressor (default RidgeCV) over frozen sub-regressors' predictions."""

    def __init__(self, estimators: list | None = None, final_estimator: Any = None):
        self.estimators = estimators
        self.final_estimator = final_estimator

    def fit(self, X: Any, y: Any) -> StackedMergedRegressor:
        estimators = _check_prefit(self.estimators)
        self._adopt_inputs(estimators)
        final = RidgeCV() if self.final_estimator is None else clone(self.final_estimator)
        self.final_estimator_ = final.fit(self._meta_features(X), y)
        return self

    def _meta_features(self, X: Any) -> np.ndarray:
        preds = [np.asarray(e.predict(X), dtype=np.float64) for e in self.estimators_]
        return np.hstack([p.reshape(p.shape[0], -1) for p in preds])

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.final_estimator_.predict(self._meta_features(X))
