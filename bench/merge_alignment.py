"""Why class alignment matters when merging per-partition forests.

Training rows sorted by label and split straight into P partitions is the
worst case the operator hit: most partitions see only some classes. For each
P this prints holdout accuracy of
  naive     the operator's `estimators_ +=` concat (mergers.forest.naive_concat)
  aligned   mergers.forest.combine_forests on the same label-sorted partitions
  shuffled  combine_forests on shuffled (IID) partitions of the same rows
  single    one forest on all rows with the same total number of trees
  control   RandomForestClassifier(max_samples=1/P): each tree sees 1/P of the rows, IID

Run: .venv/bin/python bench/merge_alignment.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from mergers.forest import combine_forests, naive_concat


def fit_partitions(X: np.ndarray, y: np.ndarray, n_parts: int, trees: int, seed: int) -> list:
    """One forest per contiguous chunk, each with its own seed and trees // P trees (total budget)."""
    per_part = max(1, trees // n_parts)
    return [
        RandomForestClassifier(n_estimators=per_part, random_state=seed + i, n_jobs=-1).fit(Xp, yp)
        for i, (Xp, yp) in enumerate(zip(np.array_split(X, n_parts), np.array_split(y, n_parts), strict=True))
    ]


def accuracy(build: Callable[..., object], *args: object, X_test: np.ndarray, y_test: np.ndarray, **kwargs: object) -> str:
    """Holdout accuracy of `build(*args, **kwargs)`, or 'crash: <ExcType>' when building or predicting raises."""
    try:
        model = build(*args, **kwargs)
        return f"{np.mean(model.predict(X_test) == y_test):.3f}"
    except Exception as exc:  # noqa: BLE001 - the broken recipe's failure is the result
        return f"crash: {type(exc).__name__}"


def fit_forest(X: np.ndarray, y: np.ndarray, **params: object) -> RandomForestClassifier:
    return RandomForestClassifier(n_jobs=-1, **params).fit(X, y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k rows instead of 20k")
    parser.add_argument("--trees", type=int, default=64, help="total tree budget per model (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    n_rows = 10_000 if args.quick else 20_000
    X, y = make_classification(
        n_samples=n_rows, n_features=20, n_informative=10, n_classes=5, n_clusters_per_class=2,
        random_state=args.seed,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=args.seed, stratify=y)
    order = np.argsort(y_train, kind="stable")
    X_sorted, y_sorted = X_train[order], y_train[order]
    shuffle = np.random.default_rng(args.seed).permutation(len(y_train))
    X_shuf, y_shuf = X_train[shuffle], y_train[shuffle]
    classes = np.unique(y_train)

    print(f"{n_rows} rows, 5 classes, {len(y_test)} holdout rows, {args.trees} trees per model in total")
    header = (
        f"{'P':>3} | {'classes/partition':>17} | {'naive concat':>18} | {'aligned (sorted)':>16} | "
        f"{'aligned (shuffled)':>18} | {'single forest':>13} | {'max_samples=1/P':>15}"
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for n_parts in (2, 4, 8, 16):
        sorted_models = fit_partitions(X_sorted, y_sorted, n_parts, args.trees, args.seed)
        shuffled_models = fit_partitions(X_shuf, y_shuf, n_parts, args.trees, args.seed)
        seen = [len(m.classes_) for m in sorted_models]
        total = sum(m.n_estimators for m in sorted_models)
        holdout = {"X_test": X_test, "y_test": y_test}
        cols = [
            accuracy(naive_concat, sorted_models, **holdout),
            accuracy(combine_forests, sorted_models, classes=classes, **holdout),
            accuracy(combine_forests, shuffled_models, classes=classes, **holdout),
            accuracy(fit_forest, X_train, y_train, n_estimators=total, random_state=args.seed, **holdout),
            accuracy(
                fit_forest, X_train, y_train, n_estimators=total, max_samples=1 / n_parts, random_state=args.seed,
                **holdout,
            ),
        ]
        span = f"{min(seen)}-{max(seen)}"
        print(
            f"{n_parts:>3} | {span:>17} | {cols[0]:>18} | {cols[1]:>16} | {cols[2]:>18} | {cols[3]:>13} | {cols[4]:>15}"
        )
    print(f"({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
