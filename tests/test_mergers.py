"""Mergers: class alignment, exact averaging, no input mutation, and clear errors."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import estimator_checks_generator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from mergers.forest import combine_forests, naive_concat
from mergers.stacking import StackedMergedClassifier, combine_stacking
from mergers.voting import VotingMergedClassifier, VotingMergedRegressor, combine_voting, soft_vote
from shardfit import merge as merge_mod
from shardfit.errors import MergeError

N_CLASSES = 4
X_ALL, Y_ALL = make_classification(
    n_samples=400, n_features=6, n_informative=4, n_redundant=0, n_classes=N_CLASSES, random_state=0
)
XR_ALL, YR_ALL = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
CLASSES = np.arange(N_CLASSES)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny fits gain nothing from OpenMP threads and suffer badly when the machine is busy."""
    with threadpool_limits(limits=1):
        yield


def aligned_proba(model, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The model's probabilities spread over `classes` (0 for classes it never saw), computed independently."""
    proba = model.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model.classes_):
        out[:, int(np.flatnonzero(classes == c)[0])] = proba[:, j]
    return out


def weighted_mean_proba(models: list, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    counts = np.array([m.n_estimators for m in models], dtype=float)
    return sum(c * aligned_proba(m, X, classes) for c, m in zip(counts, models, strict=True)) / counts.sum()


def fingerprints(models: list) -> list[bytes]:
    return [pickle.dumps(m) for m in models]


def make_classifier(kind: str, n_trees: int, seed: int, oob: bool = False):
    if kind == "rf":
        return RandomForestClassifier(n_estimators=n_trees, max_depth=6, random_state=seed, oob_score=oob)
    if kind == "et":
        return ExtraTreesClassifier(n_estimators=n_trees, max_depth=6, random_state=seed, bootstrap=oob, oob_score=oob)
    if kind == "bag":
        return BaggingClassifier(DecisionTreeClassifier(max_depth=6), n_estimators=n_trees, random_state=seed, oob_score=oob)
    if kind == "bag_knn":  # a non-tree base estimator, fitted on row subsets so members miss classes
        return BaggingClassifier(KNeighborsClassifier(3), n_estimators=n_trees, max_samples=4, random_state=seed)
    raise AssertionError(kind)


@st.composite
def class_partitions(draw, max_parts: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Partitions that each hold a random subset of the classes (single-class ones included)."""
    n_parts = draw(st.integers(1, max_parts))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for _ in range(n_parts):
        labels = sorted(draw(st.sets(st.sampled_from(range(N_CLASSES)), min_size=1, max_size=N_CLASSES)))
        pool = np.flatnonzero(np.isin(Y_ALL, labels))
        rows = rng.choice(pool, size=draw(st.integers(8, 60)), replace=False)
        parts.append((X_ALL[rows], Y_ALL[rows]))
    return parts


PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@PROPERTY_SETTINGS
@given(
    parts=class_partitions(),
    kind=st.sampled_from(["rf", "et", "bag", "bag_knn"]),
    trees=st.lists(st.integers(1, 6), min_size=4, max_size=4),
    pass_classes=st.booleans(),
)
def test_merged_proba_is_tree_weighted_mean_of_aligned_probas(parts, kind, trees, pass_classes):
    models = [make_classifier(kind, trees[i], seed=i).fit(Xp, yp) for i, (Xp, yp) in enumerate(parts)]
    before = fingerprints(models)
    union = np.unique(np.concatenate([m.classes_ for m in models]))
    classes = CLASSES if pass_classes else union

    merged = combine_forests(models, classes=CLASSES if pass_classes else None, weights=[len(p[1]) for p in parts])
    # Compared before any predict: KNN's tree pickles its query counters.
    assert fingerprints(models) == before, "combine_forests mutated its inputs"

    assert type(merged) is type(models[0])
    np.testing.assert_array_equal(merged.classes_, classes)
    proba = merged.predict_proba(X_ALL)
    assert proba.shape == (len(X_ALL), len(classes))
    np.testing.assert_allclose(proba, weighted_mean_proba(models, X_ALL, classes), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(merged.predict(X_ALL), classes[np.argmax(proba, axis=1)])
    assert merged.n_estimators == len(merged.estimators_) == sum(m.n_estimators for m in models)
    if len(models) == 1 and not pass_classes:
        np.testing.assert_allclose(proba, models[0].predict_proba(X_ALL), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(merged.predict(X_ALL), models[0].predict(X_ALL))


@pytest.mark.parametrize("kind", ["rf", "et", "bag"])
def test_merging_one_model_is_equivalent(kind):
    model = make_classifier(kind, 5, seed=1).fit(X_ALL[:200], Y_ALL[:200])
    merged = combine_forests([model])
    assert merged is not model
    np.testing.assert_array_equal(merged.predict(X_ALL), model.predict(X_ALL))
    np.testing.assert_allclose(merged.predict_proba(X_ALL), model.predict_proba(X_ALL), rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from([RandomForestRegressor, ExtraTreesRegressor, BaggingRegressor]),
    trees=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_merged_regressor_is_tree_weighted_mean(kind, trees, seed):
    rng = np.random.default_rng(seed)
    models = []
    for i, n in enumerate(trees):
        rows = rng.choice(len(YR_ALL), size=60, replace=False)
        models.append(kind(n_estimators=n, random_state=seed + i).fit(XR_ALL[rows], YR_ALL[rows]))
    before = fingerprints(models)
    merged = combine_forests(models)
    counts = np.array(trees, dtype=float)
    expected = sum(c * m.predict(XR_ALL) for c, m in zip(counts, models, strict=True)) / counts.sum()
    np.testing.assert_allclose(merged.predict(XR_ALL), expected, rtol=0, atol=1e-9)
    assert merged.n_estimators == sum(trees)
    assert fingerprints(models) == before


@pytest.mark.parametrize("kind", ["rf", "et", "bag"])
def test_merged_forest_is_a_genuine_estimator(kind):
    parts = [(Y_ALL < 2), (Y_ALL >= 1), (Y_ALL == 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few trees: sklearn warns that some rows have no OOB score
        models = [make_classifier(kind, 6, seed=i, oob=True).fit(X_ALL[m], Y_ALL[m]) for i, m in enumerate(parts)]
    assert all(hasattr(m, "oob_score_") for m in models)
    merged = combine_forests(models, classes=CLASSES)

    assert merged.n_estimators == 18
    assert not hasattr(merged, "oob_score_")
    assert not hasattr(merged, "oob_decision_function_")
    assert not hasattr(merged, "estimators_samples_"), "partition-local row indices must not survive a merge"
    check_is_fitted(merged)
    np.testing.assert_allclose(merged.predict_proba(X_ALL).sum(axis=1), 1.0, atol=1e-12)
    assert 0.0 <= merged.score(X_ALL, Y_ALL) <= 1.0

    fresh = clone(merged)
    assert fresh.get_params()["n_estimators"] == 18
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    fresh.fit(X_ALL, Y_ALL)
    np.testing.assert_array_equal(fresh.classes_, CLASSES)

    restored = pickle.loads(pickle.dumps(merged))
    np.testing.assert_array_equal(restored.predict_proba(X_ALL), merged.predict_proba(X_ALL))

    if kind != "bag":
        importances = merged.feature_importances_
        assert importances.shape == (X_ALL.shape[1],)
        assert np.all(np.isfinite(importances))
        assert importances.sum() == pytest.approx(1.0)


def _sorted_partitions_accuracies(n_parts: int, data: tuple, total_trees: int = 64) -> dict[str, float]:
    X_train, y_train, X_test, y_test = data
    order = np.argsort(y_train, kind="stable")
    chunks = zip(np.array_split(X_train[order], n_parts), np.array_split(y_train[order], n_parts), strict=True)
    models = [
        RandomForestClassifier(n_estimators=total_trees // n_parts, random_state=i).fit(Xp, yp)
        for i, (Xp, yp) in enumerate(chunks)
    ]
    shuffled = np.random.default_rng(0).permutation(len(y_train))
    iid_chunks = zip(
        np.array_split(X_train[shuffled], n_parts), np.array_split(y_train[shuffled], n_parts), strict=True
    )
    iid_models = [
        RandomForestClassifier(n_estimators=total_trees // n_parts, random_state=i).fit(Xp, yp)
        for i, (Xp, yp) in enumerate(iid_chunks)
    ]
    classes = np.unique(y_train)
    aligned = combine_forests(models, classes=classes)
    assert aligned.predict_proba(X_test).shape == (len(X_test), len(classes))
    try:
        naive = float(np.mean(naive_concat(models).predict(X_test) == y_test))
    except ValueError:
        naive = 0.0  # a merge that crashes classifies nothing
    single = RandomForestClassifier(n_estimators=total_trees, random_state=0).fit(X_train, y_train)
    return {
        "naive": naive,
        "aligned": aligned.score(X_test, y_test),
        "aligned_iid": combine_forests(iid_models, classes=classes).score(X_test, y_test),
        "single": single.score(X_test, y_test),
        "chance": float(np.max(np.bincount(y_test)) / len(y_test)),
    }


@pytest.fixture(scope="module")
def five_class_data():
    X, y = make_classification(
        n_samples=3000, n_features=12, n_informative=8, n_classes=5, n_clusters_per_class=1, random_state=3
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return X_train, y_train, X_test, y_test


@pytest.mark.parametrize("n_parts", [2, 4, 8, 16])
def test_label_sorted_partitions_merge_far_better_than_naive_concat(n_parts, five_class_data):
    acc = _sorted_partitions_accuracies(n_parts, five_class_data)
    assert acc["aligned"] > acc["naive"] + 0.2, acc
    # Trees that never saw a class cannot recognise it, so with label-sorted
    # partitions the merge is well above chance but, past P=2, far from one
    # forest on all rows; on IID partitions the same merge stays close to it.
    assert acc["aligned"] > acc["chance"] + 0.15, acc
    assert acc["aligned_iid"] > acc["single"] - 0.15, acc
    if n_parts == 2:
        assert acc["aligned"] > acc["single"] - 0.2, acc


def _names(model, names):
    model = copy.deepcopy(model)
    model.feature_names_in_ = np.asarray(names, dtype=object)
    return model


def test_errors_are_merge_errors():
    a = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_ALL, Y_ALL)
    b = RandomForestClassifier(n_estimators=3, random_state=1).fit(X_ALL, Y_ALL)
    et = ExtraTreesClassifier(n_estimators=3, random_state=0).fit(X_ALL, Y_ALL)
    narrow = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_ALL[:, :5], Y_ALL)
    cols = [f"f{i}" for i in range(X_ALL.shape[1])]
    cases = {
        "empty": ([], {}),
        "mixed types": ([a, et], {}),
        "n_features_in_": ([a, narrow], {}),
        "feature_names_in_": ([_names(a, cols), _names(b, cols[::-1])], {}),
        "names on one only": ([_names(a, cols), b], {}),
        "unfitted": ([a, RandomForestClassifier()], {}),
        "classes not a superset": ([a, b], {"classes": np.array([0, 1, 2])}),
        "not a forest": ([LogisticRegression(max_iter=500).fit(X_ALL, Y_ALL)], {}),
    }
    for name, (models, context) in cases.items():
        with pytest.raises(MergeError) as info:
            combine_forests(models, **context)
        message = str(info.value)
        assert message and "\n" not in message, name
        assert isinstance(info.value, ValueError)
    # Same names in the same order merge fine.
    merged = combine_forests([_names(a, cols), _names(b, cols)])
    np.testing.assert_array_equal(merged.feature_names_in_, cols)


def test_multi_output_classifier_is_refused_clearly():
    Y2 = np.column_stack([Y_ALL, Y_ALL % 2])
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(X_ALL, Y2)
    with pytest.raises(MergeError, match="multi-output"):
        combine_forests([model, model])


def test_mergers_declare_what_they_support_and_take_context():
    assert combine_forests.estimator_types == ("classifier", "regressor")
    assert combine_voting.estimator_types == ("classifier", "regressor")
    assert soft_vote.estimator_types == ("classifier",)
    assert combine_stacking.estimator_types == ("classifier", "regressor")
    for fn in (combine_forests, combine_voting, soft_vote, combine_stacking):
        assert merge_mod.accepts_context(fn)


# ---------------------------------------------------------------- voting


def _class_subset_parts() -> list[tuple[np.ndarray, np.ndarray]]:
    return [(X_ALL[m], Y_ALL[m]) for m in (Y_ALL <= 1, (Y_ALL >= 1) & (Y_ALL <= 2), Y_ALL >= 2)]


def test_soft_voting_aligns_histgradientboosting_classes():
    parts = _class_subset_parts()
    models = [HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(Xp, yp) for Xp, yp in parts]
    before = fingerprints(models)
    merged = combine_voting(models, classes=CLASSES, weights=[len(p[1]) for p in parts])
    assert fingerprints(models) == before

    np.testing.assert_array_equal(merged.classes_, CLASSES)
    proba = merged.predict_proba(X_ALL)
    expected = np.mean([aligned_proba(m, X_ALL, CLASSES) for m in models], axis=0)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
    # Class 0 is known to the first partition only, so it gets a third of its probability.
    np.testing.assert_allclose(proba[:, 0], models[0].predict_proba(X_ALL)[:, 0] / 3, atol=1e-12)
    np.testing.assert_array_equal(merged.predict(X_ALL), CLASSES[np.argmax(expected, axis=1)])
    assert merged.n_features_in_ == X_ALL.shape[1]


def test_voting_weights_by_rows_only_when_asked():
    parts = _class_subset_parts()
    models = [LogisticRegression(max_iter=500).fit(Xp, yp) for Xp, yp in parts]
    rows = [10, 1, 1]
    equal = combine_voting(models, classes=CLASSES, weights=rows)
    weighted = combine_voting(models, classes=CLASSES, weights=rows, params={"weight_by_rows": True})
    probas = np.stack([aligned_proba(m, X_ALL, CLASSES) for m in models])
    np.testing.assert_allclose(equal.predict_proba(X_ALL), probas.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(weighted.predict_proba(X_ALL), np.average(probas, axis=0, weights=rows), atol=1e-12)
    assert not np.allclose(equal.predict_proba(X_ALL), weighted.predict_proba(X_ALL))
    with pytest.raises(MergeError):
        combine_voting(models, weights=[1, 2], params={"weight_by_rows": True})


@pytest.mark.parametrize("make", [lambda: SVC(), lambda: RidgeClassifier()])
def test_hard_voting_fallback_without_predict_proba(make):
    parts = _class_subset_parts()
    models = [make().fit(Xp, yp) for Xp, yp in parts]
    merged = combine_voting(models, classes=CLASSES)
    assert merged.voting_ == "hard"
    assert not hasattr(merged, "predict_proba")
    votes = np.zeros((len(X_ALL), N_CLASSES))
    for m in models:
        votes[np.arange(len(X_ALL)), m.predict(X_ALL)] += 1
    np.testing.assert_array_equal(merged.predict(X_ALL), np.argmax(votes, axis=1))
    with pytest.raises(MergeError, match="predict_proba"):
        soft_vote(models)


def test_hard_voting_mixed_with_soft_capable_models_and_weights():
    parts = _class_subset_parts()
    models = [SVC().fit(*parts[0]), LogisticRegression(max_iter=500).fit(*parts[1]), SVC().fit(*parts[2])]
    rows = [1, 5, 1]
    merged = combine_voting(models, weights=rows, params={"weight_by_rows": True})
    assert merged.voting_ == "hard"
    # Model 1 outweighs the other two together, so its predictions win everywhere.
    np.testing.assert_array_equal(merged.predict(X_ALL), models[1].predict(X_ALL))


def test_voting_regressor_averages():
    rng = np.random.default_rng(0)
    models = [
        HistGradientBoostingRegressor(max_iter=20).fit(XR_ALL[rows], YR_ALL[rows])
        for rows in (rng.choice(300, 100, replace=False) for _ in range(3))
    ] + [Ridge().fit(XR_ALL, YR_ALL)]
    merged = combine_voting(models)
    assert isinstance(merged, VotingMergedRegressor)
    preds = np.stack([m.predict(XR_ALL) for m in models])
    np.testing.assert_allclose(merged.predict(XR_ALL), preds.mean(axis=0), atol=1e-9)
    weighted = combine_voting(models, weights=[1, 2, 3, 4], params={"weight_by_rows": True})
    np.testing.assert_allclose(weighted.predict(XR_ALL), np.average(preds, axis=0, weights=[1, 2, 3, 4]), atol=1e-9)
    assert -1.0 <= merged.score(XR_ALL, YR_ALL) <= 1.0


def test_voting_errors():
    clf = LogisticRegression(max_iter=500).fit(X_ALL, Y_ALL)
    reg = Ridge().fit(X_ALL, Y_ALL.astype(float))
    with pytest.raises(MergeError):
        combine_voting([])
    with pytest.raises(MergeError, match="all classifiers or all regressors"):
        combine_voting([clf, reg])
    with pytest.raises(MergeError, match="not fitted"):
        combine_voting([clf, LogisticRegression()])
    with pytest.raises(MergeError, match="features"):
        combine_voting([clf, LogisticRegression().fit(X_ALL[:, :3], Y_ALL)])
    with pytest.raises(MergeError, match="not in the global class set"):
        combine_voting([clf], classes=[0, 1])
    with pytest.raises(MergeError, match="classifiers only"):
        soft_vote([reg])


def test_voting_merged_model_is_fitted_clonable_and_picklable():
    parts = _class_subset_parts()
    models = [HistGradientBoostingClassifier(max_iter=10).fit(Xp, yp) for Xp, yp in parts]
    merged = combine_voting(models, classes=CLASSES)
    check_is_fitted(merged)
    fresh = clone(merged)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh.estimators[0])
    restored = pickle.loads(pickle.dumps(merged))
    np.testing.assert_array_equal(restored.predict_proba(X_ALL), merged.predict_proba(X_ALL))
    np.testing.assert_array_equal(restored.predict(X_ALL), merged.predict(X_ALL))
    assert restored.score(X_ALL, Y_ALL) == merged.score(X_ALL, Y_ALL)


# scikit-learn's full estimator checks all call `fit`, so they exercise the
# refit path (`fit` refits a clone of each sub-estimator on the check's data),
# not the merge path, which adopts partition models through `from_fitted`
# without fitting. They are still worth running: they prove the predict side
# (validation, shapes, dtypes, pickling, cloning, tags) follows the API. What
# they cannot cover for the merge path (adopted models are fitted, clone
# unfits them, pickling keeps predictions) is tested just above.
# scikit-learn's own checks (pandas is a test dependency, so the DataFrame checks run), minus
# the one for array-API namespaces, which this project does not support or install: it would
# skip, and a skipped check proves nothing.
_NEEDS_OPTIONAL = {"check_array_api_input"}
_VOTING_ESTIMATORS = [
    VotingMergedClassifier(estimators=[LogisticRegression(), DecisionTreeClassifier(max_depth=3)]),
    VotingMergedClassifier(estimators=[RidgeClassifier(), DecisionTreeClassifier(max_depth=3)]),
    VotingMergedRegressor(estimators=[Ridge(), DecisionTreeRegressor(max_depth=3)], weights=[2, 1]),
]


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


_VOTING_CHECKS = [
    (est, chk)
    for base in _VOTING_ESTIMATORS
    for est, chk in estimator_checks_generator(base)
    if _check_name(chk) not in _NEEDS_OPTIONAL
]


@pytest.mark.parametrize(
    ("estimator", "check"), _VOTING_CHECKS,
    ids=[f"{type(e).__name__}-{i}-{_check_name(c)}" for i, (e, c) in enumerate(_VOTING_CHECKS)],
)
def test_voting_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- stacking


def test_stacking_beats_or_matches_weakest_sub_model():
    X_train, X_hold, y_train, y_hold = train_test_split(X_ALL, Y_ALL, test_size=0.3, random_state=0, stratify=Y_ALL)
    X_fit, X_cal, y_fit, y_cal = train_test_split(X_train, y_train, test_size=0.3, random_state=0, stratify=y_train)
    masks = (y_fit <= 1, (y_fit >= 1) & (y_fit <= 2), y_fit >= 2)
    models = [RandomForestClassifier(n_estimators=10, random_state=i).fit(X_fit[m], y_fit[m]) for i, m in enumerate(masks)]
    before = fingerprints(models)
    merged = combine_stacking(models, calibration=(X_cal, y_cal), classes=CLASSES)
    assert fingerprints(models) == before
    assert isinstance(merged, StackedMergedClassifier)
    np.testing.assert_array_equal(merged.classes_, CLASSES)
    proba = merged.predict_proba(X_hold)
    assert proba.shape == (len(X_hold), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    weakest = min(m.score(X_hold, y_hold) for m in models)
    assert merged.score(X_hold, y_hold) >= weakest
    restored = pickle.loads(pickle.dumps(merged))
    np.testing.assert_array_equal(restored.predict_proba(X_hold), proba)


def test_stacking_regressor_and_custom_final_estimator():
    X_fit, X_cal, y_fit, y_cal = train_test_split(XR_ALL, YR_ALL, test_size=0.3, random_state=0)
    halves = np.array_split(np.argsort(y_fit), 2)  # each sub-model sees one half of the target range
    models = [DecisionTreeRegressor(max_depth=4, random_state=0).fit(X_fit[h], y_fit[h]) for h in halves]
    merged = combine_stacking(models, calibration=(X_cal, y_cal))
    weakest = min(m.score(XR_ALL, YR_ALL) for m in models)
    assert merged.score(XR_ALL, YR_ALL) >= weakest

    custom = combine_stacking(
        models,
        calibration=(X_cal, y_cal),
        params={"final_estimator": "sklearn.linear_model:Ridge", "final_estimator_params": {"alpha": 3.0}},
    )
    assert isinstance(custom.final_estimator_, Ridge) and custom.final_estimator_.alpha == 3.0


def test_stacking_errors():
    model = LogisticRegression(max_iter=500).fit(X_ALL, Y_ALL)
    for calibration in (None, (np.empty((0, X_ALL.shape[1])), np.empty(0))):
        with pytest.raises(MergeError, match="calibration_size"):
            combine_stacking([model], calibration=calibration)
    with pytest.raises(MergeError, match="calibration_size"):
        combine_stacking([model])
    with pytest.raises(MergeError, match="module:Class"):
        combine_stacking([model], calibration=(X_ALL, Y_ALL), params={"final_estimator": "Ridge"})
    with pytest.raises(MergeError, match="cannot load"):
        combine_stacking([model], calibration=(X_ALL, Y_ALL), params={"final_estimator": "sklearn:Nope"})
    with pytest.raises(MergeError, match="calibration rows"):
        combine_stacking([model], calibration=(X_ALL[Y_ALL == 0], Y_ALL[Y_ALL == 0]))


# ---------------------------------------------------------------- persistence


def test_merged_models_round_trip_through_skops_with_only_allowlisted_types():
    sio = pytest.importorskip("skops.io")
    parts = _class_subset_parts()
    merged = {
        "forest": combine_forests([RandomForestClassifier(n_estimators=3, random_state=i).fit(*p) for i, p in enumerate(parts)]),
        "bagging": combine_forests(
            [BaggingClassifier(KNeighborsClassifier(3), n_estimators=3, random_state=i).fit(*p) for i, p in enumerate(parts)]
        ),
        "voting": combine_voting([LogisticRegression(max_iter=500).fit(*p) for p in parts]),
        "stacking": combine_stacking([LogisticRegression(max_iter=500).fit(*p) for p in parts], calibration=(X_ALL, Y_ALL)),
    }
    for name, model in merged.items():
        blob = sio.dumps(model)
        untrusted = sio.get_untrusted_types(data=blob)
        # The registry refuses skops types outside these roots (shardfit.registry.SKOPS_TRUSTED_ROOTS).
        assert {t.split(".")[0] for t in untrusted} <= {"sklearn", "numpy", "scipy", "mergers", "builtins"}, name
        restored = sio.loads(blob, trusted=untrusted)
        np.testing.assert_array_equal(restored.predict_proba(X_ALL), model.predict_proba(X_ALL), err_msg=name)
